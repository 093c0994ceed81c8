"""Collect every ``result.json`` under a runs directory into one tidy DataFrame.

One row per experiment × framework × configuration × fold × epoch (a failed job adds one row per
framework with its error and no fold). ``python -m bench.collect RUNS_DIR --out FILE`` writes it
(Parquet, or CSV when FILE ends in ``.csv``); figures and tables read only that file.

This module is the one place that types the table's columns (``COLUMNS``, ``conform``) and
selects its rows (``newest_per_fold``, ``newest_config``); the report reuses both. It never
shows a traceback: every job it cannot use (failed, unreadable, partial) is listed with its path
and reason, the table of everything readable is written, and the exit status is 3.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from . import results
from .catalog import CONFIG_COLUMNS
from .results import JobResult, ResultError

#: every column of the table and its dtype, in order
COLUMNS: dict[str, str] = {
    "experiment": "str",
    **dict.fromkeys(CONFIG_COLUMNS, "str"),
    "seed": "Int64",
    "fold": "Int64",
    "epoch": "Int64",
    "train_loss": "float64",
    "train_error": "float64",
    "test_loss": "float64",
    "test_error": "float64",
    "val_loss": "float64",
    "val_error": "float64",
    "train_seconds": "float64",
    "status": "str",
    "error": "str",
    "lr": "float64",
    "epochs": "Int64",
    "folds": "Int64",
    "batch_size": "Int64",
    "threads": "Int64",
    "device": "str",
    "torch_version": "str",
    "python_version": "str",
    "git_commit": "str",
    "job": "str",
    "config_id": "str",
    "finished": "str",
}
LABELS = ["experiment", *CONFIG_COLUMNS]
#: what tells configurations apart in the report: the labels and the learning rate
SETTING = [*LABELS, "lr"]

#: config keys that do not change a fold's numbers: jobs differing only in these are merged
MERGEABLE = ("name", "folds")


def config_id(config: dict[str, Any]) -> str:
    """A short hash of everything in ``config`` that can change a fold's numbers (in a crossed
    design the number of folds does: it sets which draws fold k combines)."""
    crossed = config.get("vary") == "crossed"
    kept = {k: v for k, v in config.items() if k not in MERGEABLE or (crossed and k == "folds")}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:12]


def conform(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every column of ``COLUMNS`` (missing ones as NA), each of its dtype, in
    order (extra columns kept after them)."""
    out = frame.copy()
    for column, dtype in COLUMNS.items():
        if column not in out.columns:
            out[column] = pd.NA
        if dtype == "Int64":
            out[column] = pd.to_numeric(out[column], errors="coerce").astype("Int64")
        elif dtype == "float64":
            out[column] = pd.to_numeric(out[column], errors="coerce").astype("float64")
        else:
            out[column] = out[column].astype("str")
    extra = [c for c in out.columns if c not in COLUMNS]
    return out[[*COLUMNS, *extra]]


def rows(result: JobResult, job: str) -> list[dict[str, Any]]:
    """The table rows of one job: one per framework × finished fold × epoch, plus one per
    framework (no fold) if the job failed."""
    config = result.config
    common = {
        **result.choices,
        "seed": config["seed"],
        "epochs": config["epochs"],
        "folds": config["folds"],
        "batch_size": config["batch_size"],
        "threads": result.threads,
        "device": result.device,
        "torch_version": result.versions.get("torch"),
        "python_version": result.versions.get("python"),
        "git_commit": result.versions.get("git_commit"),
        "job": job,
        "error": result.error,
        "config_id": config_id(config),
        "finished": result.finished or result.started,
    }
    done = result.done_models()
    out = [
        {**common, "framework": run.framework, "fold": run.fold, "lr": run.lr}
        | {"status": run.status}
        | asdict(record)
        for run in result.runs
        if (run.lr, run.fold) in done
        for record in run.epochs
    ]
    if result.status == "failed":
        out += [
            {**common, "framework": name, "lr": lr, "status": "failed"}
            for name in result.frameworks
            for lr in result.lrs
        ]
    return out


def newest_per_fold(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (experiment, config_id, framework, fold, epoch): where two jobs computed the
    same fold of the same configuration (say ``folds=3`` then ``folds=10``), the newest wins, so
    no fold is counted twice; a failed job is dropped once a later job of its config finished."""
    frame = frame.sort_values("finished", kind="stable", na_position="first")
    keys = ["experiment", "config_id", "framework", "lr", "fold", "epoch"]
    frame = frame.drop_duplicates(keys, keep="last")
    failed = frame["status"] == "failed"
    jobs = ["experiment", "config_id"]
    done = frame[~failed].groupby(jobs)["finished"].max().to_dict()
    superseded = [
        bad and key in done and done[key] > finished
        for bad, key, finished in zip(
            failed, frame[jobs].itertuples(index=False, name=None), frame["finished"], strict=True
        )
    ]
    return frame[~pd.Series(superseded, index=frame.index, dtype=bool)]


def newest_config(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Keep, for each experiment and label combination, only the newest configuration.

    Jobs with the same labels and learning rate but other settings (say a sweep with
    ``batch_size=50`` left in ``runs/`` beside the default one) must not be pooled as if they
    were more folds. Returns the rows kept and one note per job set aside (its rows stay in the
    results file).
    """
    if frame["config_id"].isna().all():
        return frame, []
    jobs = frame.groupby([*SETTING, "config_id"], dropna=False)["finished"].max().reset_index()
    newest = jobs.sort_values("finished", kind="stable").drop_duplicates(SETTING, keep="last")
    chosen = newest[[*SETTING, "config_id"]]
    kept = frame.merge(chosen, on=[*SETTING, "config_id"], how="inner")
    dropped = frame.merge(chosen, on=SETTING, suffixes=("", "_kept"))
    dropped = dropped[dropped["config_id"] != dropped["config_id_kept"]]
    notes = [
        f"`{row.experiment}`: job `{row.job}` has the same labels as a newer job but other "
        "settings; it is left out (its rows stay in the results file)"
        for row in dropped.drop_duplicates("job").itertuples(index=False)
    ]
    return kept, notes


@dataclass(frozen=True)
class Problem:
    """A job whose result is missing from the table, or only partly there."""

    path: Path
    kind: str  # "failed", "unreadable" or "partial"
    reason: str


@dataclass
class Collection:
    """The table and every job that did not fully make it into it."""

    frame: pd.DataFrame
    problems: list[Problem]
    statuses: dict[str, int]  # readable jobs by outcome: ok, diverged, failed, partial

    @property
    def jobs(self) -> int:
        return sum(self.statuses.values())

    def summary(self) -> str:
        """``'17 jobs: 15 ok, 1 diverged, 1 failed, 0 partial; 0 unreadable'``."""
        unreadable = sum(p.kind == "unreadable" for p in self.problems)
        counts = ", ".join(f"{self.statuses.get(k, 0)} {k}" for k in JOB_OUTCOMES)
        return f"{self.jobs} jobs: {counts}; {unreadable} unreadable"


JOB_OUTCOMES = ("ok", "diverged", "failed", "partial")


def collect_runs(runs_dir: Path | str) -> Collection:
    """Every result under ``runs_dir``: the tidy table, and the failed, unreadable and partial
    jobs (a partial job's finished folds are in the table)."""
    runs_dir = Path(runs_dir)
    table: list[dict[str, Any]] = []
    problems: list[Problem] = []
    statuses: dict[str, int] = {}
    for path in sorted(runs_dir.rglob(results.RESULT_FILE)):
        try:
            result = JobResult.read(path)
            job_rows = rows(result, str(path.parent.relative_to(runs_dir)))
        except ResultError as error:
            problems.append(Problem(path, "unreadable", str(error).removeprefix(f"{path}: ")))
            continue
        except (KeyError, TypeError, ValueError) as error:  # a config that lacks a column
            problems.append(Problem(path, "unreadable", f"malformed result ({error!r})"))
            continue
        table += job_rows
        outcome = result.status
        if result.status == "failed":
            problems.append(Problem(path, "failed", result.error or "no error message"))
        elif reason := result.incomplete():
            outcome = "partial"
            problems.append(Problem(path, "partial", f"{reason} (resume: re-run the same command)"))
        statuses[outcome] = statuses.get(outcome, 0) + 1
    frame = newest_per_fold(conform(pd.DataFrame(table, columns=list(COLUMNS))))
    frame = frame.sort_values([*SETTING, "fold", "epoch"], ignore_index=True)
    return Collection(frame, problems, statuses)


def collect(runs_dir: Path | str) -> pd.DataFrame:
    """Every result under ``runs_dir`` as one tidy DataFrame (columns: ``COLUMNS``)."""
    return collect_runs(runs_dir).frame


def save(frame: pd.DataFrame, out: Path | str) -> None:
    """Write the table: CSV when ``out`` ends in ``.csv``, Parquet otherwise."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".csv":
        frame.to_csv(out, index=False)
    else:
        frame.to_parquet(out, index=False, compression="zstd")  # a third smaller than snappy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.collect",
        description="Collect every result.json under RUNS_DIR into one tidy table.",
    )
    parser.add_argument("runs_dir", type=Path, help="a sweep directory (e.g. runs/)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("reports/results.parquet"),
        help="the table to write: .parquet (default), or .csv",
    )
    args = parser.parse_args(argv)
    if not args.runs_dir.is_dir():
        parser.error(f"no such directory: {args.runs_dir}")
    try:
        found = collect_runs(args.runs_dir)
        if found.jobs:
            save(found.frame, args.out)
    except OSError as error:
        print(f"collect: error: {error}", file=sys.stderr)
        return 2
    for problem in found.problems:
        print(f"collect: {problem.kind} job: {problem.path}: {problem.reason}", file=sys.stderr)
    if not found.jobs:
        print(
            f"collect: no readable results under {args.runs_dir}; nothing written", file=sys.stderr
        )
        return 3 if found.problems else 1
    print(f"collect: {found.summary()}; {len(found.frame)} rows -> {args.out}")
    # the table is written either way; the status says it is incomplete
    return 3 if found.problems else 0
