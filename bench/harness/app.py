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
from .training import RunResult, train

log = logging.getLogger("bench")
config.register()


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


def _log_fold(label: str, cfg: DictConfig, fold: int, name: str, outcome: RunResult) -> None:
    final = outcome.epochs[-1]
    log.info(
        "[%s] fold %d/%d %-6s test error %.3f  train %.2f s%s",
        label,
        fold + 1,
        cfg.folds,
        name,
        final.test_error,
        final.train_seconds,
        f"  DIVERGED at epoch {outcome.diverged_epoch}" if outcome.status == "diverged" else "",
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
            for name, outcome in run_fold(cfg, fold).items():
                result.runs.append(
                    FoldRun(name, fold, outcome.status, outcome.epochs, outcome.diverged_epoch)
                )
                _log_fold(label, cfg, fold, name, outcome)
            result.wall_seconds = time.perf_counter() - start
            result.write(path)  # durable progress: a kill keeps every finished fold
        diverged = any(run.status == "diverged" for run in result.runs)
        result.status = "diverged" if diverged else "ok"
    except Exception as error:  # recorded, not raised: one bad job must not stop a sweep
        log.exception("job failed")
        result.status = "failed"
        result.error = f"{type(error).__name__}: {error}"
    order = {name: index for index, name in enumerate(frameworks(cfg))}
    result.runs.sort(key=lambda run: (run.fold, order.get(run.framework, len(order))))
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
