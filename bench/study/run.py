"""``python -m bench.study NAME [options] [overrides]``: run a study until its claims are decided.

A fixed study (``replicates: N``) runs each of its experiments' sweeps once at N replicates. An
adaptive one (``replicates: auto``) runs them in batches: after each batch it collects the
table, decides every claim with anytime-valid intervals (`bench.report.sequential`), prints one
line (the replicates so far, the claims still undecided, the budget left), and stops when every
claim is supported or contradicted, or when the budget (replicates or minutes) is spent. Only
the experiments with an undecided claim get the next batch. Then it writes the study's report:
``reports/`` for the paper's study, ``reports/<name>/`` for any other.

Every batch is an ordinary sweep (``python -m bench experiment=X folds=n``, run in this
process: `app.in_process`), trained as stacked programs, and each job keeps its finished folds:
a killed study keeps its finished batches, and a re-run continues from the replicates on disk
(fold k draws the same data, initial weights and batch order whatever the batch; in float32 its
rounding can depend on the size of the stack it was trained in).
Extra ``key=value`` overrides go to every sweep (``epochs=20``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from bench import atomic
from bench.harness import app, catalog, collect
from bench.harness.sweep import clock
from bench.report import build, claims, views
from bench.study.spec import (
    DEFAULT,
    STATE_FILE,
    Budget,
    Study,
    StudyError,
    load,
    report_dir,
)

#: the job directory leaves out the number of folds, so every batch extends the same jobs
EXCLUDE_KEYS = "[experiment,name,hydra/launcher,hydra.launcher.n_jobs,folds]"


def _write_state(out: Path, state: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out / STATE_FILE, json.dumps(state, indent=1) + "\n")


@dataclass
class Runner:
    """Runs a study's sweeps and collects its table."""

    study: Study
    runs: Path
    overrides: list[str]
    launcher: str

    def arguments(self, experiment: str, replicates: int) -> list[str]:
        """The overrides of one experiment's whole sweep at ``replicates`` (an experiment whose
        file sets its own folds, such as a crossed design whose folds are its design, keeps
        them)."""
        name = catalog.experiments()[experiment].name
        arguments = [f"experiment={experiment}", f"hydra/launcher={self.launcher}",
                     f"hydra.sweep.dir={self.runs / name}",
                     f"hydra.job.config.override_dirname.exclude_keys={EXCLUDE_KEYS}"]  # fmt: skip
        if not own_folds(experiment):
            arguments.append(f"folds={replicates}")
        return [*arguments, *self.overrides]

    def command(self, experiment: str, replicates: int) -> list[str]:
        """The same sweep as a command line (``python -m bench ARGUMENTS``)."""
        return [sys.executable, "-m", "bench", *self.arguments(experiment, replicates)]

    def sweep(self, experiment: str, replicates: int) -> int:
        """Run one experiment's sweep (`arguments`) in this process (`app.in_process`: the same
        Hydra sweep as `command`'s, without starting Python and torch again); its exit status."""
        return app.in_process(self.arguments(experiment, replicates))

    def table(self) -> tuple[pd.DataFrame, collect.Collection]:
        """The study's experiments' rows of everything under the runs directory."""
        found = collect.collect_runs(self.runs) if self.runs.is_dir() else None
        if found is None:
            return collect.conform(pd.DataFrame(columns=list(collect.COLUMNS))), None
        names = {catalog.experiments()[e].name for e in self.study.experiments}
        frame = found.frame[found.frame["experiment"].isin(names)].reset_index(drop=True)
        return frame, found


def own_folds(experiment: str) -> bool:
    """Whether an experiment's file sets its number of folds (``folds: 216`` for the crossed
    variance design): a study runs it at those, not at the study's replicates."""
    node = OmegaConf.load(catalog.CONF_DIR / "experiment" / f"{experiment}.yaml")
    return "folds" in node


def replicates_on_disk(frame: pd.DataFrame, experiment: str) -> int:
    """The replicates every configuration of ``experiment`` has finished (0 when none)."""
    rows = frame[(frame["experiment"] == experiment) & frame["fold"].notna()]
    if rows.empty:
        return 0
    per = rows.groupby(["framework", *catalog.CONFIG_COLUMNS, "lr"], dropna=False)["fold"]
    return int(per.nunique().min())


def _save(frame: pd.DataFrame, found: collect.Collection | None, results: Path) -> int:
    """Write the study's table; print collect's problems; 3 when a job failed or is partial."""
    for problem in found.problems if found else []:
        print(f"collect: {problem.kind} job: {problem.path}: {problem.reason}", file=sys.stderr)
    if frame.empty:
        print("bench.study: no results to collect", file=sys.stderr)
        return 3
    collect.save(frame, results)
    print(f"collect: {found.summary()}; {len(frame)} study rows -> {results}")
    return 3 if found.problems else 0


def run_fixed(study: Study, runner: Runner, results: Path) -> tuple[int, str]:
    status = 0
    for index, experiment in enumerate(study.experiments, 1):
        print(f"== study {study.name}: sweep {index}/{len(study.experiments)}: {experiment}",
              flush=True)  # fmt: skip
        code = runner.sweep(experiment, study.replicates)
        if code == 2:
            return 2, "an invalid configuration"
        status |= code != 0
    saved = _save(*runner.table(), results)
    return (1 if status or saved else 0), f"fixed design: {study.replicates} replicates"


def run_adaptive(study: Study, runner: Runner, results: Path, out: Path) -> tuple[int, str]:
    """Batches until every claim is decided or the budget is spent (module docstring)."""
    plan = build.design(study)
    assert plan is not None
    start = time.monotonic()
    status, batch = 0, 0
    pending = list(study.experiments)
    looks: list[dict] = []
    frame, _ = runner.table()
    on_disk = min((replicates_on_disk(frame, catalog.experiments()[e].name) for e in pending),
                  default=0)  # fmt: skip
    n = max(plan.batch, on_disk // plan.batch * plan.batch)  # resume at the replicates on disk
    while True:
        batch += 1
        for experiment in pending:
            code = runner.sweep(experiment, n)
            if code == 2:
                return 2, "an invalid configuration"
            status |= code != 0
        frame, found = runner.table()
        if found is None or frame.empty:
            return 1, "no results"
        df = views.prepare(claims.at_most(frame, n))
        verdicts = claims.verdicts_at(df, study.claims, plan)
        open_ = [key for key, verdict in verdicts.items() if verdict not in claims.DECIDED]
        elapsed = time.monotonic() - start
        minutes = study.budget.minutes * 60
        looks.append({"replicates": n, "undecided": open_, "seconds": round(elapsed, 1)})
        print(
            f"[study {study.name}] batch {batch}: {n} replicates; "
            f"{len(open_)}/{len(verdicts)} claims undecided"
            + (f" ({', '.join(open_)})" if open_ else "")
            + f"; budget left: {max(study.budget.replicates - n, 0)} replicates, "
            f"{clock(max(minutes - elapsed, 0))} of {clock(minutes)}",
            flush=True,
        )
        stopped = ""
        if not open_:
            stopped = "every claim decided"
        elif n + plan.batch > study.budget.replicates:
            stopped = f"budget spent: {n} replicates"
        elif elapsed >= minutes:
            stopped = f"budget spent: {study.budget.minutes:g} minutes"
        _write_state(out, {"study": study.name, "design": "sequential", "batch": plan.batch,
                           "budget": {"replicates": study.budget.replicates,
                                      "minutes": study.budget.minutes},
                           "looks": looks, "stopped": stopped})  # fmt: skip
        if stopped:
            saved = _save(frame, found, results)
            return (1 if status or saved else 0), stopped
        keys = {c.experiment for c in study.claims if c.key in open_}
        pending = [e for e in study.experiments if e in keys]
        n += plan.batch


def _study(args: argparse.Namespace) -> Study:
    study = load(args.study)
    changes: dict = {}
    if args.replicates is not None:
        changes["replicates"] = None if args.replicates == "auto" else _count(args.replicates)
    if args.batch is not None:
        changes["batch"] = args.batch
    budget = study.budget
    if args.budget_replicates is not None:
        budget = replace(budget, replicates=args.budget_replicates)
    if args.budget_minutes is not None:
        budget = replace(budget, minutes=args.budget_minutes)
    study = replace(study, budget=Budget(budget.replicates, budget.minutes), **changes)
    if study.batch < 2 or study.budget.replicates < study.batch:
        raise StudyError(f"batch {study.batch}, budget {study.budget.replicates} replicates: "
                         "allowed: batch ≥ 2 and budget ≥ batch")  # fmt: skip
    if not (math.isfinite(study.budget.minutes) and study.budget.minutes > 0):
        raise StudyError(f"budget {study.budget.minutes} minutes: allowed: a number > 0")
    return study


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 2:
        raise StudyError(f"--replicates {text}: allowed: auto, or an integer ≥ 2")
    return int(text)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.study",
        description="Run a study (bench/conf/study/NAME.yaml) until its claims are decided, "
        "then write its report.",
    )
    p.add_argument("study", nargs="?", default=DEFAULT, help=f"the study (default: {DEFAULT})")
    p.add_argument("overrides", nargs="*", help="key=value overrides for every sweep")
    p.add_argument("--replicates", help="auto, or a fixed number (default: the study's)")
    p.add_argument("--batch", type=int, help="replicates added per batch (auto)")
    p.add_argument("--budget-replicates", type=int, help="stop at this many replicates (auto)")
    p.add_argument("--budget-minutes", type=float, help="stop after this many minutes (auto)")
    p.add_argument("--runs", type=Path, default=Path("runs"), help="the runs directory")
    p.add_argument("--out", type=Path, help="the report directory (default: reports[/NAME])")
    p.add_argument("--launcher", default="joblib", help="Hydra launcher (joblib: local cores)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_intermixed_args(argv)
    bad = [o for o in args.overrides if "=" not in o]
    if bad:
        print(f"bench.study: error: not a key=value override: {' '.join(bad)}", file=sys.stderr)
        return 2
    folds = [o for o in args.overrides if o.split("=", 1)[0].lstrip("+~") == "folds"]
    if folds:  # the study's replicates: `make sweep SWEEP_ARGS=folds=3` is --replicates 3
        args.overrides = [o for o in args.overrides if o not in folds]
        args.replicates = args.replicates or folds[-1].split("=", 1)[1]
    try:
        study = _study(args)
    except StudyError as error:
        print(f"bench.study: error: {error}", file=sys.stderr)
        return 2
    out = args.out or report_dir(study.name)
    results = out / "results.parquet"
    runner = Runner(study, args.runs, list(args.overrides), args.launcher)
    start = time.monotonic()
    atomic.ignore_file_size_signal()  # past `ulimit -f`: an error we report, not a kill
    try:
        if study.adaptive:
            status, stopped = run_adaptive(study, runner, results, out)
        else:
            status, stopped = run_fixed(study, runner, results)
            _write_state(out, {"study": study.name, "design": "fixed",
                               "replicates": study.replicates, "stopped": stopped})  # fmt: skip
    except KeyboardInterrupt:
        print(
            "bench.study: interrupted; every finished batch is kept on disk: re-run the same "
            f"command to continue from the replicates in {args.runs}",
            file=sys.stderr,
        )
        return 130
    except OSError as error:
        where = error.filename or out
        print(f"bench.study: error: cannot write {where}: {error.strerror or error}; the "
              "previous files are kept", file=sys.stderr)  # fmt: skip
        return 2
    except ValueError as error:  # a table collect or the report refuses (collect.TableError)
        line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"bench.study: error: {line}", file=sys.stderr)
        return 2
    if status == 2 or not results.is_file():
        print(f"bench.study: {study.name}: stopped: {stopped}; no report written", file=sys.stderr)
        return 2 if status == 2 else 1
    code = build.main(["--results", str(results), "--out", str(out), "--study", str(study.path)])
    seconds = time.monotonic() - start
    print(f"== study {study.name}: {stopped}; report in {out} "
          f"({int(seconds // 60)} min {int(seconds % 60)} s)")  # fmt: skip
    return status or code
