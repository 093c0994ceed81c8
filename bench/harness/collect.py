"""Collect every ``result.json`` under a runs directory into one tidy DataFrame.

One row per experiment × framework × configuration × fold × epoch (a failed job adds one row per
framework with its error and no fold). ``python -m bench.collect RUNS_DIR --out FILE`` writes it
atomically (Parquet, or CSV when FILE ends in ``.csv`` or ``.csv.gz``, any case); figures and
tables read only that file.

This module is the one place that types and checks the table's columns (``COLUMNS``,
``check_table``) and selects its rows (``newest_per_fold``, ``newest_config``); the report
reuses them. It never
shows a traceback: every job it cannot use (failed, unreadable, partial) is listed with its path
and reason, the table of everything readable is written, and the exit status is 3.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench import atomic, processes

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
    if isinstance(kept.get("device"), str):  # torch has one CPU device: cpu:1 is cpu
        kept["device"] = _device(kept["device"])
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:12]


def _device(device: str) -> str:
    """``cpu:N`` → ``cpu`` (torch has one CPU device, whatever the index); others unchanged."""
    return "cpu" if re.fullmatch(r"cpu(:\d+)?", device) else device


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
        "device": _device(result.device),
        "torch_version": result.versions.get("torch"),
        "python_version": result.versions.get("python"),
        "git_commit": result.versions.get("git_commit"),
        "job": job,
        "error": result.error,
        "config_id": config_id(config),
        "finished": result.finished or result.started,
    }
    done = result.done_models()
    out = []
    for run in result.unique_runs():  # a run held twice (a hand-edited file): its first copy
        if (run.lr, run.fold) not in done:
            continue
        head = {**common, "framework": run.framework, "fold": run.fold, "lr": run.lr,
                "status": run.status}  # fmt: skip
        out += [head | vars(record) for record in run.epochs]  # numbers only: no copies needed
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
    failed = (frame["status"] == "failed").to_numpy(dtype=bool)
    jobs = ["experiment", "config_id"]
    done = frame[~failed].groupby(jobs)["finished"].max().to_dict()
    superseded = np.zeros(len(frame), dtype=bool)
    where = np.flatnonzero(failed)  # a few rows: one per framework of a failed job
    bad = frame.iloc[where]
    for position, key, finished in zip(
        where, bad[jobs].itertuples(index=False, name=None), bad["finished"], strict=True
    ):
        superseded[position] = key in done and done[key] > finished
    return frame[~superseded]


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


class TableError(ValueError):
    """A results table that cannot be used as it is; the message (one line) names the problem."""


#: the values each numeric column may hold (NA aside): (low, high) for the integer columns, or
#: "fraction" (in [0, 1]), "seconds" (finite, >= 0), "rate" (finite, >= 0)
RANGES: dict[str, tuple[int, int] | str] = {
    "seed": (0, 2**63 - 1),
    "fold": (0, 2**63 - 1),
    "epoch": (0, 2**63 - 1),
    "epochs": (1, 2**63 - 1),
    "folds": (1, 2**63 - 1),
    "batch_size": (1, 2**63 - 1),
    "threads": (1, 2**63 - 1),
    "train_error": "fraction",
    "test_error": "fraction",
    "val_error": "fraction",
    "train_seconds": "seconds",
    "lr": "rate",
}

#: what tells two rows of one fold and epoch apart when the table holds no config_id
ROW_KEY = ["experiment", "config_id", *CONFIG_COLUMNS, "lr", "seed", "fold", "epoch"]


def _example(values: pd.Series) -> str:
    value = values.iloc[0]
    return repr(value.item() if isinstance(value, np.generic) else value)


_NA_TEXT = ("", "nan", "<na>", "none", "null")


def _scalar(value: object, integer: bool) -> tuple[object, bool]:
    """(the value as an int or float, None when absent; whether it is bad)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None, False
    if isinstance(value, (bool, np.bool_)):
        return None, True
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in _NA_TEXT:
            return None, False
        try:
            value = int(text) if integer and re.fullmatch(r"[+-]?\d+", text) else float(text)
        except (ValueError, OverflowError):
            return None, True
    if isinstance(value, (int, np.integer)):
        number = int(value)
        if integer and not -(2**63) <= number < 2**63:
            return None, True
        return (number if integer else float(number)), False
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if math.isnan(number):
            return None, False
        if integer:
            ok = math.isfinite(number) and number.is_integer() and abs(number) < 2.0**63
            return (int(number) if ok else None), not ok
        return number, False
    return None, True


def _typed(column: str, values: pd.Series, integer: bool) -> pd.Series:
    """``values`` as Int64 (``integer``) or float64, NA where absent; TableError naming the
    first value that is not a number (an integer that a 64-bit int holds, where ``integer``)."""
    dtype = values.dtype
    numeric = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    if numeric and not (integer and pd.api.types.is_float_dtype(dtype)):
        if integer and str(dtype).lower().startswith("uint"):
            big = values > 2**63 - 1
            if big.any():
                raise TableError(
                    f"column '{column}': {int(big.sum())} value(s) are not an integer a 64-bit "
                    f"int holds (first: {_example(values[big])})"
                )
        return values.astype("Int64" if integer else "float64")
    parsed = [_scalar(v, integer) for v in values]
    bad = pd.Series([flag for _, flag in parsed], index=values.index, dtype=bool)
    if bad.any():
        kind = "an integer a 64-bit int holds" if integer else "a number"
        raise TableError(
            f"column '{column}': {int(bad.sum())} value(s) are not {kind} "
            f"(first: {_example(values[bad])})"
        )
    numbers = [v for v, _ in parsed]
    if integer:
        return pd.Series(pd.array(numbers, dtype="Int64"), index=values.index)
    return pd.Series(
        [math.nan if v is None else v for v in numbers], index=values.index, dtype="float64"
    )


def _check_range(column: str, values: pd.Series) -> None:
    rule = RANGES[column]
    present = values.notna().to_numpy()
    if rule == "fraction":
        ok, allowed = values.between(0, 1), "in [0, 1] (or NaN)"
    elif rule in ("seconds", "rate"):
        ok, allowed = np.isfinite(values) & (values >= 0), "finite and >= 0"
    else:
        low, high = rule
        ok, allowed = values.between(low, high), f"in [{low}, {high}]"
    bad = pd.Series(present & ~ok.fillna(True).to_numpy(dtype=bool), index=values.index)
    if bad.any():
        raise TableError(
            f"column '{column}': {int(bad.sum())} value(s) out of range, {allowed} "
            f"(first: {_example(values[bad])})"
        )


_NAN_BITS = np.array([np.nan]).view("int64")[0]


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """What `check_table` compares rows by: values equal exactly when their text is
    (``astype(str)``, which keeps NaN as NaN: every NaN is one value, -0.0 is not 0.0).

    Numbers are not written out as text, the slow part of checking a large table: a float64
    column is compared by its bits (every NaN given the same ones), an Int64 column as it is
    (a missing value is one value); any other column by its text."""
    if not frame.columns.is_unique:
        return frame.astype(str)
    columns = {}
    for name, values in frame.items():
        if values.dtype == "float64":
            numbers = values.to_numpy()
            bits = numbers.view("int64").copy()
            bits[np.isnan(numbers)] = _NAN_BITS
            columns[name] = bits
        elif isinstance(values.dtype, pd.Int64Dtype):
            columns[name] = values.array
        else:
            columns[name] = values.astype(str).array
    return pd.DataFrame(columns, index=frame.index, columns=frame.columns)


def check_table(frame: pd.DataFrame, duplicates: str = "drop") -> tuple[pd.DataFrame, list[str]]:
    """Validate a results table and type it (`conform`): the one check of collect (each job's
    rows) and the report (the table it reads).

    Every numeric value must be a number (an integer where the column is one) in its range
    (`RANGES`: errors in [0, 1] or NaN, times finite and non-negative). Rows that repeat another
    row exactly are dropped (``duplicates="drop"``, with a note) or refused (``"refuse"``), or
    left alone (``"keep"``: collect's own selection, `newest_per_fold`, handles them); rows
    that hold the same fold and epoch of the same configuration with other numbers are refused.

    Returns the typed table and one note per change or oddity (no trailing period). Raises
    TableError, one line naming the column, the count and the first bad value.
    """
    out = frame.copy()
    for column, dtype in COLUMNS.items():
        if column in out.columns and dtype in ("Int64", "float64"):
            out[column] = _typed(column, out[column], integer=dtype == "Int64")
            if column in RANGES:
                _check_range(column, out[column])
    notes: list[str] = []
    if duplicates != "keep" and len(out):
        repeated = _as_text(out).duplicated()
        if repeated.any() and duplicates == "refuse":
            raise TableError(f"{int(repeated.sum())} rows repeat another row exactly")
        if repeated.any():
            notes.append(
                f"{int(repeated.sum())} rows of the results file repeat another row exactly "
                "(a table saved twice?); the copies are dropped"
            )
            out = out[~repeated.to_numpy()]
        key = [c for c in ROW_KEY if c in out.columns]
        curves = (
            out[out["fold"].notna() & out["epoch"].notna()]
            if {"fold", "epoch"} <= set(out.columns)
            else out.iloc[:0]
        )
        clash = _as_text(curves[key]).duplicated(keep=False)
        unkeyed = [c for c in ("lr", "seed", "config_id") if c not in out.columns]
        if clash.any() and unkeyed and "experiment" in out.columns:
            # without those columns the rows cannot be told apart: leave out those experiments
            for name in sorted(curves.loc[clash, "experiment"].astype(str).unique()):
                gone = out["experiment"].astype(str) == name
                notes.append(
                    f"`{name}`: its {int(gone.sum())} rows cannot be told apart without the "
                    f"{', '.join(f'`{c}`' for c in unkeyed)} column(s) (several rows per fold "
                    "and epoch); the experiment is left out"
                )
                out = out[~gone.to_numpy()]
            clash = clash.iloc[:0]
        if clash.any():
            clash = _as_text(curves[key]).duplicated()
            raise TableError(
                f"{int(clash.sum())} rows hold the same experiment, configuration, fold and "
                "epoch as another row with other values (two tables merged? collect keeps the "
                "newest job's)"
            )
    if "test_error" in out.columns and {"fold", "epoch"} <= set(out.columns):
        status = out["status"].astype(str) if "status" in out.columns else "ok"
        odd = out["fold"].notna() & out["epoch"].notna() & out["test_error"].isna()
        odd &= status != "diverged"
        if odd.any():
            notes.append(
                f"{int(odd.sum())} rows of folds not marked diverged hold no test error (NaN); "
                "those folds are left out wherever their final error is needed"
            )
    return conform(out), notes


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


def result_files(runs_dir: Path) -> list[Path]:
    """Every ``result.json`` under ``runs_dir``, symlinked directories followed (``runs/expB ->
    /scratch/expB``, the usual layout on a cluster), each real directory read once: a symlink
    loop, or two links to one directory, is not a second copy of its jobs."""
    found: list[Path] = []
    seen: set[str] = set()
    for top, dirs, files in os.walk(runs_dir, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        if results.RESULT_FILE in files:
            found.append(Path(top) / results.RESULT_FILE)
    return sorted(found)


def collect_runs(runs_dir: Path | str, workers: int = 1) -> Collection:
    """Every result under ``runs_dir``: the tidy table, and the failed, unreadable and partial
    jobs (a partial job's finished folds are in the table). A job whose values the table cannot
    hold (a non-integer fold, a batch size past 64 bits) is unreadable; the others go on.
    ``workers`` > 1: the jobs are read in that many processes (the same table)."""
    runs_dir = Path(runs_dir)
    paths = result_files(runs_dir)
    if workers > 1 and len(paths) > 1:  # reading and checking a job's file is most of the time
        with processes.pool(min(workers, len(paths))) as pool, processes.forking():
            jobs = list(pool.map(_read_job, paths, [runs_dir] * len(paths)))
    else:
        jobs = [_read_job(path, runs_dir) for path in paths]
    frames = [job.frame for job in jobs if job.frame is not None]
    problems = [problem for job in jobs for problem in job.problems]
    statuses: dict[str, int] = {}
    for job in jobs:
        if job.outcome:
            statuses[job.outcome] = statuses.get(job.outcome, 0) + 1
    empty = conform(pd.DataFrame(columns=list(COLUMNS)))
    frame = pd.concat([empty, *frames], ignore_index=True) if frames else empty
    frame = newest_per_fold(conform(frame))
    frame = frame.sort_values([*SETTING, "fold", "epoch"], ignore_index=True)
    return Collection(frame, problems, statuses)


@dataclass
class _Job:
    """One job as read: its rows (None when unreadable), its problems, its outcome."""

    frame: pd.DataFrame | None
    problems: list[Problem]
    outcome: str = ""


def _read_job(path: Path, runs_dir: Path) -> _Job:
    try:
        result = JobResult.read(path)
        job_rows = rows(result, str(path.parent.relative_to(runs_dir)))
        job_frame, _ = check_table(pd.DataFrame(job_rows, columns=list(COLUMNS)), "keep")
    except ResultError as error:
        return _Job(None, [Problem(path, "unreadable", str(error).removeprefix(f"{path}: "))])
    except TableError as error:
        return _Job(None, [Problem(path, "unreadable", f"a value the table cannot hold: {error}")])
    except (KeyError, TypeError, ValueError, OverflowError, RecursionError) as error:
        # a config that lacks a column, or holds a value of the wrong kind
        return _Job(None, [Problem(path, "unreadable", f"malformed result ({error!r})"[:300])])
    if result.status == "failed":
        return _Job(job_frame, [Problem(path, "failed", result.error or "no error message")],
                    "failed")  # fmt: skip
    if reason := result.incomplete():
        problem = Problem(path, "partial", f"{reason} (resume: re-run the same command)")
        return _Job(job_frame, [problem], "partial")
    return _Job(job_frame, [], result.status)


def collect(runs_dir: Path | str) -> pd.DataFrame:
    """Every result under ``runs_dir`` as one tidy DataFrame (columns: ``COLUMNS``)."""
    return collect_runs(runs_dir).frame


#: the table formats by file-name ending (any case): CSV (gzip-compressed too) or Parquet
FORMATS = {".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet", ".pq": "parquet"}


def table_format(path: Path | str) -> str:
    """``"csv"`` or ``"parquet"`` from the name's ending, in any case (``x.CSV``, ``x.csv.gz``);
    TableError for any other ending."""
    name = Path(path).name.lower()
    for suffix, kind in sorted(FORMATS.items(), key=lambda item: -len(item[0])):
        if name.endswith(suffix):
            return kind
    raise TableError(f"{path}: unknown table format; name it .parquet, .csv or .csv.gz (any case)")


def _compression(path: Path) -> str | None:
    return "gzip" if path.name.lower().endswith(".gz") else None


def read_table(path: Path | str) -> pd.DataFrame:
    """A table written by `save` (the format from the name, `table_format`)."""
    path = Path(path)
    if table_format(path) == "csv":
        return pd.read_csv(path, compression=_compression(path), low_memory=False)
    return pd.read_parquet(path)


def save(frame: pd.DataFrame, out: Path | str) -> None:
    """Write the table atomically (`bench.atomic`): CSV when ``out`` ends in ``.csv`` or
    ``.csv.gz``, Parquet for ``.parquet`` (any case); a write that fails part way (a full disk,
    a quota, a kill) leaves the previous table whole."""
    out = Path(out)
    kind = table_format(out)
    with atomic.atomic_path(out) as temp:
        if kind == "csv":
            frame.to_csv(temp, index=False, compression=_compression(out))
        else:
            frame.to_parquet(temp, index=False, compression="zstd")  # a third smaller than snappy


def _os_error(error: OSError) -> str:
    """``'No space left on device'``: the reason of an OSError without its errno prefix."""
    return error.strerror or str(error) or type(error).__name__


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
        help="the table to write: .parquet (default), .csv or .csv.gz",
    )
    args = parser.parse_args(argv)
    atomic.ignore_file_size_signal()  # past `ulimit -f`: an error we report, not a kill
    if not args.runs_dir.is_dir():
        parser.error(f"no such directory: {args.runs_dir}")
    try:
        table_format(args.out)
    except TableError as error:
        parser.error(str(error))
    if args.out.is_dir():
        parser.error(f"--out {args.out} is a directory; give a file name (.parquet or .csv)")
    try:
        found = collect_runs(args.runs_dir, min(processes.WORKERS, processes.cpus()))
    except OSError as error:
        print(f"collect: error: cannot read {args.runs_dir}: {_os_error(error)}", file=sys.stderr)
        return 2
    try:
        if found.jobs:
            save(found.frame, args.out)
    except OSError as error:
        previous = " (the previous table is kept unchanged)" if args.out.exists() else ""
        print(
            f"collect: error: cannot write {args.out}: {_os_error(error)}; nothing written"
            f"{previous}",
            file=sys.stderr,
        )
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
