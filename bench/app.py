"""The Hydra app: one job = one configuration × all its folds.

``python -m bench experiment=fig2_activations`` runs a whole sweep (the experiment file holds it);
``python -m bench -m activation=relu,tanh optimizer=adam,sgd`` any other. Tests call ``run(cfg,
output_dir)`` directly; ``main`` is the thin Hydra wrapper around it.
"""

from __future__ import annotations

import itertools
import logging
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

import framework as fw

from . import config, data, results
from .reference import torch_loss, torch_optimizer, torch_twin
from .training import CustomAdapter, RunResult, TorchAdapter, train

log = logging.getLogger("bench")
config.register()

ACTIVATIONS = {"relu": fw.ReLU, "tanh": fw.Tanh, "leaky_relu": fw.LeakyReLU, "elu": fw.ELU}
LOSSES = {"mse": fw.MSELoss, "bce": fw.BCELoss}
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def build_model(cfg: DictConfig, generator: torch.Generator) -> fw.Sequential:
    """2 → width (× hidden_layers) → 1 with the configured activation and a sigmoid output,
    initialised from ``generator`` (on the CPU, so the draws are the same on any device)."""
    activation = cfg.activation
    widths = [2] + [cfg.model.hidden_width] * cfg.model.hidden_layers + [1]
    layers: list[fw.Module] = []
    for index, (n_in, n_out) in enumerate(itertools.pairwise(widths)):
        layers.append(fw.Linear(n_in, n_out, dtype=DTYPES[cfg.dtype]))
        if index == len(widths) - 2:
            layers.append(fw.Sigmoid())
        elif activation.name == "leaky_relu":
            layers.append(fw.LeakyReLU(activation.negative_slope))
        elif activation.name == "elu":
            layers.append(fw.ELU(activation.alpha))
        else:
            layers.append(ACTIVATIONS[activation.name]())
    model = fw.Sequential(*layers, init=cfg.init.name, generator=generator)
    return model.to(device=cfg.device)  # type: ignore[return-value]


def build_optimizer(cfg: DictConfig, model: fw.Module) -> fw.optim.Optimizer:
    options = {k: v for k, v in OmegaConf.to_container(cfg.optimizer).items() if k != "name"}
    if "betas" in options:
        options["betas"] = tuple(options["betas"])
    return getattr(fw.optim, config.algorithm(cfg))(model.parameters(), **options)


def frameworks(cfg: DictConfig) -> list[str]:
    return [str(name.value) for name in cfg.framework.names]


def adapters(cfg: DictConfig, generator: torch.Generator) -> dict[str, Any]:
    """Freshly initialised adapters, one per configured framework, all from one initial state."""
    model = build_model(cfg, generator)
    criterion = LOSSES[cfg.loss.name]()
    optimizer = build_optimizer(cfg, model)
    built = {}
    if "torch" in frameworks(cfg):  # the twin copies the state before any training
        twin = torch_twin(model)
        built["torch"] = TorchAdapter(twin, torch_loss(criterion), torch_optimizer(optimizer, twin))
    if "custom" in frameworks(cfg):
        built["custom"] = CustomAdapter(model, criterion, optimizer)
    return {name: built[name] for name in frameworks(cfg)}


def run_fold(cfg: DictConfig, fold: int) -> dict[str, RunResult]:
    """Train every configured framework on one fold under the equivalence protocol."""
    device, dtype = torch.device(cfg.device), DTYPES[cfg.dtype]
    split = data.fold_split(cfg.seed, fold, cfg.data.n_train, cfg.data.n_test, cfg.data.radius)
    split = split.to(device, dtype)
    runs = adapters(cfg, data.generator(cfg.seed, fold, "init"))
    warmups = adapters(cfg, torch.Generator().manual_seed(0))
    outcome = {}
    for name, adapter in runs.items():
        outcome[name] = train(
            adapter,
            split,
            cfg.epochs,
            cfg.batch_size,
            shuffle=data.generator(cfg.seed, fold, "shuffle"),
            warmup=warmups[name],
        )
    return outcome


def choices(cfg: DictConfig) -> dict[str, str]:
    """The labels a row of the results table carries."""
    return {
        "experiment": cfg.name,
        "activation": str(cfg.activation.name.value),
        "optimizer": cfg.optimizer.name,
        "loss": str(cfg.loss.name.value),
        "init": str(cfg.init.name.value),
        "dtype": str(cfg.dtype.value),
    }


def _plain(cfg: DictConfig) -> dict[str, Any]:
    plain = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    plain.pop("hydra", None)
    return plain


def run(cfg: DictConfig, output_dir: Path | str) -> dict[str, Any]:
    """Run one job into ``output_dir/result.json`` and return the result.

    Skips the work if a finished result of the same configuration is already there. A bad
    value raises ``config.ConfigError`` before training; any other error is recorded as
    ``failed`` (the sweep goes on); a NaN/inf loss is recorded as ``diverged``.
    """
    config.validate(cfg)
    path = Path(output_dir) / results.RESULT_FILE
    plain = _plain(cfg)
    if results.finished(results.read(path), plain):
        log.info("[%s/%s] done already, skipping (%s)", cfg.name, path.parent.name, path)
        return results.read(path)

    torch.set_num_threads(cfg.threads)
    result: dict[str, Any] = {
        "schema": results.SCHEMA_VERSION,
        "config": plain,
        "choices": choices(cfg),
        "versions": results.versions(),
        "threads": torch.get_num_threads(),
        "device": cfg.device,
        "started": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
        "status": "ok",
        "error": None,
        "runs": [],
    }
    label = f"{cfg.name}/{path.parent.name}"
    start = time.perf_counter()
    try:
        for fold in range(cfg.folds):
            for name, outcome in run_fold(cfg, fold).items():
                final = outcome.epochs[-1]
                result["runs"].append(
                    {
                        "framework": name,
                        "fold": fold,
                        "status": outcome.status,
                        "diverged_epoch": outcome.diverged_epoch,
                        "epochs": [record.as_dict() for record in outcome.epochs],
                    }
                )
                log.info(
                    "[%s] fold %d/%d %-6s test error %.3f  train %.2f s%s",
                    label,
                    fold + 1,
                    cfg.folds,
                    name,
                    final.test_error,
                    final.train_seconds,
                    f"  DIVERGED at epoch {outcome.diverged_epoch}"
                    if outcome.status == "diverged"
                    else "",
                )
        if any(r["status"] == "diverged" for r in result["runs"]):
            result["status"] = "diverged"
    except Exception as error:  # recorded, not raised: one bad job must not stop a sweep
        log.exception("job failed")
        result["status"] = "failed"
        result["error"] = f"{type(error).__name__}: {error}"
    result["finished"] = datetime.now(timezone.utc).isoformat(timespec="microseconds")
    result["wall_seconds"] = time.perf_counter() - start
    results.write_atomic(path, result)
    return result


#: conf/ beside the package; absolute, because under ``python -m`` Hydra would read a relative
#: path as a Python package ("conf"), which the config tree is not.
CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "conf")


@hydra.main(version_base=None, config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> None:
    hydra_config = HydraConfig.get()
    try:
        result = run(cfg, hydra_config.runtime.output_dir)
    except config.ConfigError as error:
        # A user error, not a crash: one line, no traceback, non-zero exit.
        print(f"bench: invalid configuration: {error}", file=sys.stderr)
        sys.exit(2)
    # In a sweep the other jobs go on (the failure is in result.json and `collect` reports it);
    # a single run says so in its exit status.
    if result["status"] == "failed" and hydra_config.mode != RunMode.MULTIRUN:
        sys.exit(1)
