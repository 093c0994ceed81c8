"""The Hydra app: one job = one configuration × all its folds.

``python -m bench experiment=fig2_activations`` runs a whole sweep (the experiment file holds it);
``python -m bench -m activation=relu,tanh optimizer=adam,sgd`` any other. Tests call ``run(cfg,
output_dir)`` directly; ``main`` is the thin Hydra wrapper around it.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from . import config, data, results, sweep
from .catalog import CONF_DIR
from .models import DTYPES, adapters, frameworks
from .results import FoldRun, JobResult, ResultError
from .training import train

log = logging.getLogger("bench")
config.register()


def stream_indices(cfg: DictConfig, fold: int) -> dict[data.Stream, int]:
    """Which fold each random stream is drawn for: ``fold`` for every stream, or, with
    ``vary=<stream>``, for that stream only (the two others stay at fold 0's)."""
    vary = cfg.vary.value
    return {s: fold if vary in ("all", s) else 0 for s in ("data", "init", "shuffle")}


def run_fold(cfg: DictConfig, fold: int) -> list[FoldRun]:
    """Train every configured framework and learning rate on one fold under the equivalence
    protocol: the same points, initial weights and mini-batch order for all of them."""
    device, dtype = torch.device(cfg.device), DTYPES[cfg.dtype]
    index = stream_indices(cfg, fold)
    split = data.fold_split(
        cfg.seed,
        index["data"],
        cfg.data.n_train,
        cfg.data.n_test,
        cfg.data.radius,
        cfg.data.n_val,
        cfg.data.name.value,
    ).to(device, dtype)
    runs = []
    for lr in cfg.lr_grid or [cfg.optimizer.lr]:
        job = with_lr(cfg, lr)
        trained = adapters(job, data.generator(cfg.seed, index["init"], "init"))
        warmups = adapters(job, torch.Generator().manual_seed(0))
        for name, adapter in trained.items():
            shuffle = data.generator(cfg.seed, index["shuffle"], "shuffle")
            outcome = train(adapter, split, cfg.epochs, cfg.batch_size, shuffle, warmups[name])
            runs.append(
                FoldRun(name, fold, lr, outcome.status, outcome.epochs, outcome.diverged_epoch)
            )
    return runs


def with_lr(cfg: DictConfig, lr: float) -> DictConfig:
    """``cfg`` with ``optimizer.lr = lr``."""
    job = cfg.copy()
    job.optimizer.lr = lr
    return job


def choices(cfg: DictConfig) -> dict[str, str]:
    """The labels a row of the results table carries."""
    return {
        "experiment": cfg.name,
        "activation": str(cfg.activation.name.value),
        "optimizer": cfg.optimizer.name,
        "loss": str(cfg.loss.name.value),
        "init": str(cfg.init.name.value),
        "dtype": str(cfg.dtype.value),
        "vary": str(cfg.vary.value),
        "dataset": str(cfg.data.name.value),
        "model": str(cfg.model.name.value),
    }


def _plain(cfg: DictConfig) -> dict[str, Any]:
    plain = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    plain.pop("hydra", None)
    return plain


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _previous(path: Path, plain: dict[str, Any], current: dict[str, str]) -> JobResult | None:
    """The result already at ``path`` if it was computed for this config by this code."""
    if not path.exists():
        return None
    try:
        previous = JobResult.read(path)
    except ResultError as error:
        log.warning("ignoring the previous result (%s); recomputing", error)
        return None
    return previous if previous.matches(plain, current) else None


def _log_fold(label: str, cfg: DictConfig, run: FoldRun) -> None:
    final = run.epochs[-1]
    log.info(
        "[%s] fold %d/%d %-6s%s test error %.3f  train %.2f s%s",
        label,
        run.fold + 1,
        cfg.folds,
        run.framework,
        f" lr {run.lr:<8.3g}" if cfg.lr_grid else "",
        final.test_error,
        final.train_seconds,
        f"  DIVERGED at epoch {run.diverged_epoch}" if run.status == "diverged" else "",
    )


def run(cfg: DictConfig, output_dir: Path | str) -> JobResult:
    """Run one job into ``output_dir/result.json`` and return its result.

    A bad value raises ``config.ConfigError`` before training. A finished result of the same
    configuration and code is returned as is; a partial one (a killed job) is resumed from its
    first unfinished fold. The file is rewritten atomically after every fold, so a kill loses at
    most the fold in progress. Any other error is recorded as ``failed`` (a sweep goes on); a
    NaN/inf loss is recorded as ``diverged``.
    """
    config.validate(cfg)
    path = Path(output_dir) / results.RESULT_FILE
    label = f"{cfg.name}/{path.parent.name}"
    plain = _plain(cfg)
    current = results.versions(torch.__version__)
    previous = _previous(path, plain, current)
    if previous is not None and previous.incomplete() is None:
        log.info("[%s] done already, skipping (%s)", label, path)
        return previous

    torch.set_num_threads(cfg.threads)
    result = JobResult(
        config=plain,
        choices=choices(cfg),
        versions=current,
        threads=torch.get_num_threads(),
        device=cfg.device,
        started=_now(),
    )
    kept = previous.done_folds() if previous is not None else []
    if kept:
        assert previous is not None
        result.runs = [run for run in previous.runs if run.fold in kept]
        result.started, result.wall_seconds = previous.started, previous.wall_seconds
        log.info("[%s] resuming: folds %s already done", label, ", ".join(map(str, kept)))
    start = time.perf_counter() - result.wall_seconds
    try:
        for fold in range(cfg.folds):
            if fold in kept:
                continue
            for run in run_fold(cfg, fold):
                result.runs.append(run)
                _log_fold(label, cfg, run)
            result.wall_seconds = time.perf_counter() - start
            result.write(path)  # durable progress: a kill keeps every finished fold
        diverged = any(run.status == "diverged" for run in result.runs)
        result.status = "diverged" if diverged else "ok"
    except Exception as error:  # recorded, not raised: one bad job must not stop a sweep
        log.exception("job failed")
        result.status = "failed"
        result.error = f"{type(error).__name__}: {error}"
    order = {name: index for index, name in enumerate(frameworks(cfg))}
    result.runs.sort(key=lambda run: (run.fold, run.lr, order.get(run.framework, len(order))))
    result.finished = _now()
    result.wall_seconds = time.perf_counter() - start
    result.write(path)
    return result


@hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> None:
    hydra_config = HydraConfig.get()
    multirun = hydra_config.mode == RunMode.MULTIRUN
    start = time.perf_counter()
    job = hydra_config.job.override_dirname or cfg.name
    try:
        result = run(cfg, hydra_config.runtime.output_dir)
    except config.ConfigError as error:
        # A user error, not a crash: one line, no traceback, non-zero exit.
        print(f"bench: invalid configuration: {error}", file=sys.stderr)
        if multirun:
            sweep.record_job(hydra_config.sweep.dir, job, "invalid", time.perf_counter() - start)
        sys.exit(2)
    if multirun:
        sweep.record_job(hydra_config.sweep.dir, job, result.status, time.perf_counter() - start)
    # In a sweep the other jobs go on (the failure is in result.json and `collect` reports it);
    # a single run says so in its exit status.
    if result.status == "failed" and not multirun:
        sys.exit(1)
