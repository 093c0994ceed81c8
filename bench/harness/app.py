"""The Hydra app: one job = one configuration × all its folds.

``python -m bench experiment=fig2_activations`` runs a whole sweep (the experiment file holds it);
``python -m bench -m activation=relu,tanh optimizer=adam,sgd`` any other. Tests call ``run(cfg,
output_dir)`` directly; ``main`` is the thin Hydra wrapper around it.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from bench import atomic

from . import config, engines, models, results, sweep
from .catalog import CONF_DIR
from .results import FoldRun, JobResult, ResultError
from .spec import JobSpec

log = logging.getLogger("bench")
config.register()


def _plain(cfg: DictConfig) -> dict[str, Any]:
    plain = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    plain.pop("hydra", None)
    return plain


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _previous(path: Path, plain: dict[str, Any], current: dict[str, str]) -> JobResult | None:
    """The result already at ``path`` if it was computed for this config by this code, or for
    this config with another number of folds (replicates added in batches extend it; fold k
    draws the same data, initial weights and batch order whatever the number of folds, except
    in a crossed design)."""
    if not path.exists():
        return None
    try:
        previous = JobResult.read(path)
    except ResultError as error:
        log.warning("ignoring the previous result (%s); recomputing", error)
        return None
    if previous.matches(plain, current):
        return previous
    if plain.get("vary") != "crossed" and previous.matches({**plain, "folds": previous.folds},
                                                           current):  # fmt: skip
        return previous
    return None


def _log_unit(label: str, job: JobSpec, index: int, units: int, runs: list[FoldRun]) -> None:
    """One line per framework: the fold for the sequential engine, the chunk for the stacked."""
    folds_total = job.training.folds
    for name in job.frameworks:
        mine = [run for run in runs if run.framework == name]
        folds = sorted({run.fold for run in mine})
        lrs = sorted({run.lr for run in mine})
        where = (
            f"fold {folds[0] + 1}/{folds_total}"
            if len(folds) == 1
            else f"chunk {index + 1}/{units}: folds {folds[0] + 1}-{folds[-1] + 1}/{folds_total}"
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


def run(cfg: DictConfig, output_dir: Path | str, overrides: list[str] | None = None) -> JobResult:
    """Run one job into ``output_dir/result.json`` and return its result.

    The config stops here: it is validated and turned into a frozen `JobSpec`, whose pieces are
    built once (`models.check`); a bad value raises ``config.ConfigError`` before training.
    A finished result of the same configuration and code is returned as is; a partial one (a
    killed job) is resumed from its first unfinished fold. The file is rewritten atomically
    after every unit (a fold, or a chunk of stacked models), so a kill loses at most the unit in
    progress. Any other error is recorded as ``failed`` (a sweep goes on); a NaN/inf loss is
    recorded as ``diverged``. ``overrides`` (the command line's) are recorded in the result.
    """
    job = config.job_spec(cfg)
    models.check(job)
    path = Path(output_dir) / results.RESULT_FILE
    label = f"{job.experiment}/{path.parent.name}"
    plain = _plain(cfg)
    current = results.versions(torch.__version__)
    previous = _previous(path, plain, current)
    if previous is not None and previous.folds >= job.training.folds:
        if previous.incomplete() is None:  # it holds every fold asked for (or more)
            log.info("[%s] done already, skipping (%s)", label, path)
            return previous
        if previous.folds > job.training.folds:  # never drop the replicates on disk
            log.info("[%s] keeping %d folds (%d asked)", label, previous.folds, job.training.folds)
            cfg = cfg.copy()
            cfg.folds = previous.folds
            job, plain = config.job_spec(cfg), _plain(cfg)

    torch.set_num_threads(job.engine.threads)
    result = JobResult(
        config=plain,
        choices=job.choices(),
        versions=current,
        threads=torch.get_num_threads(),
        device=job.engine.device,
        started=_now(),
        overrides=overrides,
    )
    kept = previous.done_models() if previous is not None else set()
    if kept:
        assert previous is not None
        result.runs = [run for run in previous.unique_runs() if (run.lr, run.fold) in kept]
        result.started, result.wall_seconds = previous.started, previous.wall_seconds
        folds = previous.done_folds()
        log.info(
            "[%s] resuming: folds %s already done%s"
            + (
                f", extending to {job.training.folds} folds"
                if previous.folds < job.training.folds
                else ""
            ),
            label,
            ", ".join(map(str, folds)) or "none",
            f" ({len(kept)} models)" if len(previous.lrs) > 1 else "",
        )
    lrs, folds = job.training.lrs, range(job.training.folds)
    todo = [(k, lr) for k in folds for lr in lrs if (lr, k) not in kept]
    units = engines.ENGINES[job.engine.name].units(job, todo)
    start = time.perf_counter() - result.wall_seconds
    try:
        for index, unit in enumerate(units):
            runs = engines.run_unit(job, unit)
            result.runs += runs
            _log_unit(label, job, index, len(units), runs)
            result.wall_seconds = time.perf_counter() - start
            result.write(path)  # durable progress: a kill keeps every finished unit
        diverged = any(run.status == "diverged" for run in result.runs)
        result.status = "diverged" if diverged else "ok"
    except Exception as error:  # recorded, not raised: one bad job must not stop a sweep
        log.exception("job failed")
        result.status = "failed"
        result.error = f"{type(error).__name__}: {error}"
    order = {name: index for index, name in enumerate(job.frameworks)}
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
    output_dir = Path(hydra_config.runtime.output_dir)
    try:
        result = run(cfg, output_dir, list(hydra_config.overrides.task))
    except config.ConfigError as error:
        # A user error, not a crash: one line, no traceback, non-zero exit.
        print(f"bench: invalid configuration: {error}", file=sys.stderr)
        if multirun:
            sweep.record_job(hydra_config.sweep.dir, job, "invalid", time.perf_counter() - start)
        sys.exit(2)
    except OSError as error:  # a full disk or a quota at the result's write
        print(
            f"bench: cannot write {output_dir / results.RESULT_FILE}: "
            f"{error.strerror or error}; its last complete save is kept (free space, then "
            "re-run the same command to resume)",
            file=sys.stderr,
        )
        if multirun:
            with contextlib.suppress(OSError):
                sweep.record_job(hydra_config.sweep.dir, job, "failed", time.perf_counter() - start)
            return
        sys.exit(1)
    if multirun:
        sweep.record_job(hydra_config.sweep.dir, job, result.status, time.perf_counter() - start)
    # In a sweep the other jobs go on (the failure is in result.json and `collect` reports it);
    # a single run says so in its exit status.
    if result.status == "failed" and not multirun:
        sys.exit(1)


INTERRUPTED = (
    "bench: interrupted; the state is consistent (each result.json holds every fold finished "
    "before the interrupt, written atomically): re-run the same command to resume"
)


def cli() -> None:
    """``python -m bench``: `main`, with Ctrl-C answered in one line (exit 130), and a write
    past the file-size limit an error (SIGXFSZ ignored), not a kill."""
    atomic.ignore_file_size_signal()
    try:
        main()
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        sys.exit(130)


def in_process(overrides: list[str]) -> int:
    """``python -m bench OVERRIDES`` run in this process (Hydra's own command-line path, so the
    same sweep, directories and files); its exit status. A study runs its experiments' sweeps
    this way one after another: Python, torch and the launcher's worker processes (joblib's
    are reused while their settings stay the same) start once per study, not once per
    experiment, about 5 s each on 2 cores."""
    argv = sys.argv
    sys.argv = [argv[0] if argv else "bench", *overrides]
    try:
        main()
    except SystemExit as exit:
        code = exit.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    finally:
        sys.argv = argv
        GlobalHydra.instance().clear()  # the next run composes its own configuration
    return 0
