"""Collect every ``result.json`` under a runs directory into one tidy DataFrame.

One row per experiment × framework × configuration × fold × epoch (a failed job: one row with
its error). ``python -m bench.collect RUNS_DIR --out FILE.parquet`` writes the parquet and a CSV
beside it; figures and tables read only that file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from . import results

#: the columns that name a configuration (a job sweeps some of them)
CONFIG_COLUMNS = ("framework", "activation", "optimizer", "loss", "init", "dtype")
LABELS = ["experiment", *CONFIG_COLUMNS]
COLUMNS = [
    *LABELS,
    "seed",
    "fold",
    "epoch",
    "train_loss",
    "train_error",
    "test_loss",
    "test_error",
    "train_seconds",
    "status",
    "error",
    "lr",
    "epochs",
    "batch_size",
    "threads",
    "device",
    "torch_version",
    "python_version",
    "git_commit",
    "job",
    "config_id",
    "finished",
]

#: config keys that do not change a fold's numbers: jobs differing only in these are merged
MERGEABLE = ("name", "folds")


def config_id(config: dict[str, Any]) -> str:
    """A short hash of everything in ``config`` that can change a fold's numbers."""
    kept = {k: v for k, v in config.items() if k not in MERGEABLE}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:12]


def _rows(result: dict[str, Any], job: str) -> list[dict[str, Any]]:
    config = result["config"]
    common = {
        **result["choices"],
        "seed": config["seed"],
        "lr": config["optimizer"]["lr"],
        "epochs": config["epochs"],
        "batch_size": config["batch_size"],
        "threads": result["threads"],
        "device": result["device"],
        "torch_version": result["versions"]["torch"],
        "python_version": result["versions"]["python"],
        "git_commit": result["versions"]["git_commit"],
        "job": job,
        "error": result.get("error"),
        "config_id": config_id(config),
        "finished": result.get("finished"),
    }
    if result["status"] == "failed" or not result["runs"]:
        names = config["framework"]["names"]
        return [{**common, "framework": name, "status": "failed"} for name in names]
    return [
        {**common, "framework": run["framework"], "fold": run["fold"], "status": run["status"]}
        | record
        for run in result["runs"]
        for record in run["epochs"]
    ]


def _newest_per_fold(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (experiment, config_id, framework, fold, epoch): where two jobs computed the
    same fold of the same configuration (say ``folds=3`` then ``folds=10``), the newest wins, so
    no fold is counted twice; a failed job is dropped once a later job of its config finished."""
    frame = frame.sort_values("finished", kind="stable", na_position="first")
    keys = ["experiment", "config_id", "framework", "fold", "epoch"]
    frame = frame.drop_duplicates(keys, keep="last")
    failed = frame["status"] == "failed"
    done = frame[~failed].groupby(["experiment", "config_id"])["finished"].max()
    later = frame.set_index(["experiment", "config_id"]).index.map(done)
    superseded = failed & (pd.Series(later, index=frame.index) > frame["finished"])
    return frame[~superseded]


def collect(runs_dir: Path | str) -> pd.DataFrame:
    """Every result under ``runs_dir`` as one tidy DataFrame (columns: ``COLUMNS``)."""
    runs_dir = Path(runs_dir)
    rows: list[dict[str, Any]] = []
    for path in sorted(runs_dir.rglob(results.RESULT_FILE)):
        result = results.read(path)
        if result is None or result.get("schema") != results.SCHEMA_VERSION:
            print(f"collect: skipping unreadable {path}", file=sys.stderr)
            continue
        rows += _rows(result, str(path.parent.relative_to(runs_dir)))
    frame = _newest_per_fold(pd.DataFrame(rows, columns=COLUMNS))
    for column in ("fold", "epoch", "seed", "epochs", "batch_size", "threads"):
        frame[column] = frame[column].astype("Int64")
    for column in ("train_loss", "train_error", "test_loss", "test_error", "train_seconds", "lr"):
        frame[column] = frame[column].astype("float64")
    text = [c for c in COLUMNS if frame[c].dtype == object or str(frame[c].dtype) == "str"]
    frame[text] = frame[text].astype("string")
    return frame.sort_values([*LABELS, "fold", "epoch"], ignore_index=True)


def save(frame: pd.DataFrame, out: Path | str) -> None:
    """``out`` (parquet) and the same table as CSV beside it."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out, index=False)
    frame.to_csv(out.with_suffix(".csv"), index=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.collect", description=__doc__)
    parser.add_argument("runs_dir", type=Path, help="a sweep directory (e.g. runs/)")
    parser.add_argument("--out", type=Path, default=Path("reports/results.parquet"))
    args = parser.parse_args(argv)
    if not args.runs_dir.is_dir():
        parser.error(f"no such directory: {args.runs_dir}")
    frame = collect(args.runs_dir)
    if frame.empty:
        print(f"collect: no results under {args.runs_dir}", file=sys.stderr)
        return 1
    save(frame, args.out)
    jobs = frame["job"].nunique()
    failed = sorted(frame.loc[frame["status"] == "failed", "job"].unique())
    print(f"collect: {len(frame)} rows from {jobs} jobs ({len(failed)} failed) -> {args.out}")
    for job in failed:
        print(f"collect: job failed: {args.runs_dir / job / results.RESULT_FILE}", file=sys.stderr)
    return 3 if failed else 0  # the table is written either way; the status says it is partial


if __name__ == "__main__":
    sys.exit(main())
