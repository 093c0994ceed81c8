"""Multirun guard and progress, for every launcher (basic, joblib, submitit local or SLURM).

``SweepCallback`` is registered in ``conf/config.yaml`` (``hydra.callbacks``). When a multirun
starts, it composes and validates *every* job of the sweep before any trains, so one bad value
(``-m optimizer.lr=0.1,-1,0.2``) stops the sweep in a second with one line per bad job, instead
of half-way through. While the jobs run, each finished job appends one line to
``<sweep dir>/.progress.jsonl`` (``record_job``, called by the job wherever it runs: a worker, a
cluster node), and the callback prints one line per finished job with ``job k/N``, its status,
the elapsed time and an estimate of the time left.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from . import config, models

log = logging.getLogger("bench")

PROGRESS_FILE = ".progress.jsonl"
POLL_SECONDS = 0.5

#: the id of the sweep this process's jobs belong to (set by `SweepCallback`, in the process
#: that starts the sweep and in every worker): a progress line carries it, so two sweeps that
#: share a directory each count their own jobs
SWEEP_ID: str | None = None

#: keys a multirun may not sweep: each experiment holds its own sweep, and the name is the
#: sweep's directory
UNSWEEPABLE = {
    "experiment": "each experiment file holds its own sweep, which a multirun over experiment= "
    "would not run",
    "name": "the name is the sweep's directory and its progress",
}


def unsweepable(master: DictConfig) -> str | None:
    """Why this multirun cannot run (a sweep over ``experiment=`` or ``name=``), or None."""
    loader = GlobalHydra.instance().config_loader()
    parser = OverridesParser.create(config_loader=loader)
    try:
        overrides = parser.parse_overrides(list(master.hydra.overrides.task))
    except HydraException:
        return None  # Hydra itself names a malformed override
    for override in overrides:
        key = override.key_or_group
        if key in UNSWEEPABLE and override.is_sweep_override():
            values = override.input_line.partition("=")[2]
            how = (
                "run `make sweep` for every experiment, or one command per experiment: "
                + "; ".join(f"python -m bench experiment={v}" for v in values.split(","))
                if key == "experiment"
                else "run one command per name"
            )
            return f"a multirun over {key}= ({values}) is not supported: {UNSWEEPABLE[key]}; {how}"
    return None


def writable(directory: Path) -> str | None:
    """Why ``directory`` cannot hold a job's files (None when it can): created if missing, then a
    file written and removed in it."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        return f"{error.strerror or error} ({error.filename or directory})"
    return None


def planned_jobs(master: DictConfig) -> list[list[str]] | None:
    """The overrides of every job the basic sweeper will launch (None for another sweeper)."""
    sweeper = master.hydra.sweeper
    if not str(sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return None
    params = [f"{key}={value}" for key, value in (sweeper.get("params") or {}).items()]
    loader = GlobalHydra.instance().config_loader()
    parser = OverridesParser.create(config_loader=loader)
    overrides = parser.parse_overrides([*params, *master.hydra.overrides.task])
    (jobs,) = BasicSweeper.split_arguments(overrides, None)
    return jobs


def job_problem(master: DictConfig, overrides: list[str]) -> str | None:
    """Why the job of these overrides cannot run (None if it can), in one line."""
    loader = GlobalHydra.instance().config_loader()
    try:
        cfg = loader.load_sweep_config(master_config=master, sweep_overrides=overrides)
        models.check(config.job_spec(cfg))
    except config.ConfigError as error:
        return str(error)
    except (HydraException, OmegaConfBaseException) as error:
        return str(error).strip().splitlines()[0]
    return None


def clock(seconds: float) -> str:
    """``m:ss`` (``h:mm:ss`` past an hour)."""
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def record_job(sweep_dir: Path | str, job: str, status: str, seconds: float) -> None:
    """Append this job's outcome to the sweep's progress file (one short line, O_APPEND: lines
    from concurrent jobs do not interleave), tagged with this sweep's id (`SWEEP_ID`)."""
    record = {"sweep": SWEEP_ID, "job": job, "status": status, "seconds": round(seconds, 3)}
    line = json.dumps(record) + "\n"
    path = Path(sweep_dir) / PROGRESS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as file:
        file.write(line)


class Progress:
    """Reads the progress file as jobs append to it and prints a line per finished job of this
    sweep (``sweep_id``): lines already in the file, or of another sweep sharing the directory,
    are not counted."""

    def __init__(self, sweep_dir: Path, total: int, sweep_id: str | None = None) -> None:
        self.path = Path(sweep_dir) / PROGRESS_FILE
        self.total = total
        self.sweep_id = sweep_id
        self.start = time.monotonic()
        self.seen = 0
        self.statuses: dict[str, int] = {}
        self._stop = threading.Event()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()
        self.offset = self.path.stat().st_size  # earlier sweeps' lines are not this sweep's
        self._thread = threading.Thread(target=self._watch, name="sweep-progress", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self.poll()

    def poll(self) -> None:
        try:
            with open(self.path, "rb") as file:
                file.seek(self.offset)
                data = file.read()
        except OSError:
            return
        end = data.rfind(b"\n") + 1  # a line still being written: read it next time
        self.offset += end
        for line in data[:end].decode("utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict) or record.get("sweep") != self.sweep_id:
                continue
            self.seen += 1
            status = str(record.get("status"))
            self.statuses[status] = self.statuses.get(status, 0) + 1
            elapsed = time.monotonic() - self.start
            left = elapsed / self.seen * max(self.total - self.seen, 0)
            eta = "" if self.seen >= self.total else f", about {clock(left)} left"
            print(
                f"[sweep] job {self.seen}/{self.total} {status:<8} {record.get('job')} "
                f"({clock(elapsed)} elapsed{eta})",
                file=sys.stderr,
                flush=True,
            )

    def stop(self) -> str:
        self._stop.set()
        self._thread.join()
        self.poll()
        counts = ", ".join(f"{n} {status}" for status, n in sorted(self.statuses.items()))
        missing = self.total - self.seen
        return (
            f"[sweep] {self.seen}/{self.total} jobs ended ({counts or 'none'})"
            + (f", {missing} without a result" if missing else "")
            + f" in {clock(time.monotonic() - self.start)}"
        )


class SweepCallback(Callback):
    """Validate every job of a multirun before any trains; then report progress."""

    def __init__(self) -> None:
        self.progress: Progress | None = None
        self.sweep_id: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Launchers pickle the callbacks to their workers; the watcher stays in this process,
        # the sweep's id goes with them (`on_job_start` hands it to `record_job`).
        return {"progress": None, "sweep_id": self.sweep_id}

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        problem = writable(Path(str(config.hydra.run.dir)))
        if problem:
            print(f"bench: cannot write the job's directory: {problem}; nothing was run",
                  file=sys.stderr)  # fmt: skip
            sys.exit(2)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        global SWEEP_ID
        if self.sweep_id is not None:
            SWEEP_ID = self.sweep_id

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        global SWEEP_ID
        refused = unsweepable(config)
        if refused:
            print(f"bench: {refused}", file=sys.stderr)
            sys.exit(2)
        problem = writable(Path(str(config.hydra.sweep.dir)))
        if problem:
            print(f"bench: cannot write the sweep directory: {problem}; nothing was run",
                  file=sys.stderr)  # fmt: skip
            sys.exit(2)
        self.sweep_id = SWEEP_ID = uuid.uuid4().hex[:12]
        jobs = planned_jobs(config)
        if jobs is None:
            return
        problems = [(job, job_problem(config, job)) for job in jobs]
        bad = [(job, problem) for job, problem in problems if problem]
        if bad:
            for job, problem in bad:
                print(f"bench: invalid job [{' '.join(job)}]: {problem}", file=sys.stderr)
            print(
                f"bench: {len(bad)} of {len(jobs)} jobs of the sweep are invalid; nothing was run",
                file=sys.stderr,
            )
            sys.exit(2)
        self.progress = Progress(Path(config.hydra.sweep.dir), len(jobs), self.sweep_id)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.progress is not None:
            print(self.progress.stop(), file=sys.stderr, flush=True)
