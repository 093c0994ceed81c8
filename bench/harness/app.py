"""The Hydra app: one job = one configuration × all its folds.

``python -m bench experiment=fig2_activations`` runs a whole sweep (the experiment file holds it);
``python -m bench -m activation=relu,tanh optimizer=adam,sgd`` any other. Tests call ``run(cfg,
output_dir)`` directly; ``main`` is the thin Hydra wrapper around it.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Sequence
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
from .models import DTYPES, adapters, frameworks, stacked_adapters
from .results import FoldRun, JobResult, ResultError
from .training import train, train_models

log = logging.getLogger("bench")
config.register()


def stream_indices(cfg: DictConfig, fold: int) -> dict[data.Stream, int]:
    """Which fold each random stream is drawn for: ``fold`` for every stream, or, with
    ``vary=<stream>``, for that stream only (the two others stay at fold 0's)."""
    vary = cfg.vary.value
    return {s: fold if vary in ("all", s) else 0 for s in ("data", "init", "shuffle")}


def _split(cfg: DictConfig, fold: int) -> data.Split:
    """The fold's data on the job's device and dtype."""
    return data.fold_split(
        cfg.seed,
        stream_indices(cfg, fold)["data"],
        cfg.data.n_train,
        cfg.data.n_test,
        cfg.data.radius,
        cfg.data.n_val,
        cfg.data.name.value,
    ).to(torch.device(cfg.device), DTYPES[cfg.dtype])


def _generator(cfg: DictConfig, fold: int, stream: data.Stream) -> torch.Generator:
    return data.generator(cfg.seed, stream_indices(cfg, fold)[stream], stream)


def run_fold(cfg: DictConfig, fold: int, lrs: Sequence[float] | None = None) -> list[FoldRun]:
    """Train every configured framework and learning rate (``lrs``, by default all the job's)
    on one fold, one model after another, under the equivalence protocol: the same points,
    initial weights and mini-batch order for all of them."""
    split = _split(cfg, fold)
    runs = []
    for lr in lrs or learning_rates(cfg):
        job = with_lr(cfg, lr)
        trained = adapters(job, _generator(cfg, fold, "init"))
        warmups = adapters(job, torch.Generator().manual_seed(0))
        for name, adapter in trained.items():
            shuffle = _generator(cfg, fold, "shuffle")
            outcome = train(adapter, split, cfg.epochs, cfg.batch_size, shuffle, warmups[name])
            runs.append(
                FoldRun(name, fold, lr, outcome.status, outcome.epochs, outcome.diverged_epoch)
            )
    return runs


def run_stacked(cfg: DictConfig, models: Sequence[tuple[int, float]]) -> list[FoldRun]:
    """Train the (fold, lr) ``models`` as one program per framework (torch.nn's peer: one per
    learning rate), each model under the equivalence protocol as in `run_fold`."""
    splits = {fold: _split(cfg, fold) for fold in dict.fromkeys(f for f, _ in models)}
    runs = []
    for name in frameworks(cfg):
        groups = [list(models)] if name == "custom" else _by_lr(models)
        for group in groups:
            inits = [_generator(cfg, fold, "init") for fold, _ in group]
            lrs = [lr for _, lr in group]
            adapter = stacked_adapters(cfg, inits, lrs, [name])[name]
            throwaway = [torch.Generator().manual_seed(k) for k in range(len(group))]
            warmup = stacked_adapters(cfg, throwaway, lrs, [name])[name]
            outcomes = train_models(
                adapter,
                [splits[fold] for fold, _ in group],
                cfg.epochs,
                cfg.batch_size,
                [_generator(cfg, fold, "shuffle") for fold, _ in group],
                warmup,
            )
            runs += [
                FoldRun(name, fold, lr, out.status, out.epochs, out.diverged_epoch)
                for (fold, lr), out in zip(group, outcomes, strict=True)
            ]
    return runs


def _by_lr(models: Sequence[tuple[int, float]]) -> list[list[tuple[int, float]]]:
    groups: dict[float, list[tuple[int, float]]] = {}
    for fold, lr in models:
        groups.setdefault(lr, []).append((fold, lr))
    return list(groups.values())


def learning_rates(cfg: DictConfig) -> list[float]:
    return [float(lr) for lr in cfg.lr_grid] or [float(cfg.optimizer.lr)]


#: model-steps per stacked program, by default: about ten seconds of training on one core
CHUNK_STEPS = 200_000


def chunks(cfg: DictConfig, todo: Sequence[tuple[int, float]]) -> list[list[tuple[int, float]]]:
    """The units a job trains and saves one after another: for the sequential engine a fold
    (all its learning rates); for the stacked engine ``chunk`` models at a time (by default as
    many as fit in `CHUNK_STEPS` model-steps)."""
    if cfg.engine.value == "sequential":
        by_fold: dict[int, list[tuple[int, float]]] = {}
        for fold, lr in todo:
            by_fold.setdefault(fold, []).append((fold, lr))
        return list(by_fold.values())
    steps = cfg.epochs * math.ceil((cfg.data.n_train - cfg.data.n_val) / cfg.batch_size)
    size = cfg.chunk or max(1, CHUNK_STEPS // steps)
    return [list(todo[i : i + size]) for i in range(0, len(todo), size)]


def run_models(cfg: DictConfig, models: Sequence[tuple[int, float]]) -> list[FoldRun]:
    """Train one unit of `chunks`, with the job's engine."""
    if cfg.engine.value == "sequential":
        (fold,) = {fold for fold, _ in models}
        return run_fold(cfg, fold, [lr for _, lr in models])
    return run_stacked(cfg, models)


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
        "engine": str(cfg.engine.value),
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


def _log_unit(label: str, cfg: DictConfig, index: int, units: int, runs: list[FoldRun]) -> None:
    """One line per framework: the fold for the sequential engine, the chunk for the stacked."""
    for name in frameworks(cfg):
        mine = [run for run in runs if run.framework == name]
        folds = sorted({run.fold for run in mine})
        lrs = sorted({run.lr for run in mine})
        where = (
            f"fold {folds[0] + 1}/{cfg.folds}"
            if len(folds) == 1
            else f"chunk {index + 1}/{units}: folds {folds[0] + 1}-{folds[-1] + 1}/{cfg.folds}"
        )
        test = [run.epochs[-1].test_error for run in mine if run.status == "ok"]
        diverged = sum(run.status == "diverged" for run in mine)
        log.info(
            "[%s] %s%s %-6s test error %s  train %.2f s%s",
            label,
            where,
            f", {len(lrs)} lrs" if len(lrs) > 1 else "",
            name,
            f"{sum(test) / len(test):.3f}" + (" (mean)" if len(test) > 1 else "") if test else "-",
            sum(run.epochs[-1].train_seconds for run in mine),
            f"  DIVERGED: {diverged} of {len(mine)}" if diverged else "",
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
    kept = previous.done_models() if previous is not None else set()
    if kept:
        assert previous is not None
        result.runs = [run for run in previous.runs if (run.lr, run.fold) in kept]
        result.started, result.wall_seconds = previous.started, previous.wall_seconds
        folds = previous.done_folds()
        log.info(
            "[%s] resuming: folds %s already done%s",
            label,
            ", ".join(map(str, folds)) or "none",
            f" ({len(kept)} models)" if len(previous.lrs) > 1 else "",
        )
    todo = [(k, lr) for k in range(cfg.folds) for lr in learning_rates(cfg) if (lr, k) not in kept]
    units = chunks(cfg, todo)
    start = time.perf_counter() - result.wall_seconds
    try:
        for index, unit in enumerate(units):
            runs = run_models(cfg, unit)
            result.runs += runs
            _log_unit(label, cfg, index, len(units), runs)
            result.wall_seconds = time.perf_counter() - start
            result.write(path)  # durable progress: a kill keeps every finished unit
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
