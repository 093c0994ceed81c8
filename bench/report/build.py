"""Build the whole report (figures, tables, claims, README.md) from the results DataFrame.

    python -m bench.report [--study NAME] [--results reports/results.parquet] [--out reports]

The paper's study (the default) writes the paper's report into ``reports/``; any other study
(``bench/conf/study/NAME.yaml``) writes its own, its claims and its experiments' figures, into
``reports/NAME/`` from ``reports/NAME/results.parquet``.

Reads only the results file (Parquet, or CSV by extension) and, if present, the speed benchmark's
``OUT/benchmarks/summary.md`` and ``ratio.png``. The output depends on nothing else (no clock, no
paths), so two runs on the same results write byte-identical files.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench import atomic, processes
from bench import study as studies
from bench.harness import collect
from bench.report import claims, figures, sequential, stats, tables, views
from bench.report.sequential import Design
from bench.report.views import EXPERIMENTS
from bench.study import Study

CITATION = (
    '"Deep Learning framework implemented with Python", C. Ben Nejma, M. Mokni, L. Pasi, '
    "EE-559 Deep Learning (EPFL)"
)
"""The report this one reproduces."""

PROVENANCE: tuple[tuple[str, str], ...] = (
    ("git_commit", "git commit"),
    ("torch_version", "torch"),
    ("python_version", "python"),
    ("threads", "threads (torch.set_num_threads)"),
    ("device", "device"),
)


@dataclass
class Report:
    """What one build wrote: figures, tables, claims and every file path."""

    figures: list[figures.FigureResult]
    tables: tables.Tables | None
    claims: list[claims.Claim]
    files: list[Path]


def read_results(path: Path) -> pd.DataFrame:
    """The results file as a DataFrame: Parquet, or CSV (``.csv``, ``.csv.gz``, any case)."""
    return collect.read_table(path)


def _unique(df: pd.DataFrame, column: str) -> str:
    if column not in df.columns:
        return "not recorded"
    values = sorted({_text(v) for v in df[column].dropna().unique()})
    return ", ".join(values) if values else "not recorded"


def _text(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _provenance(df: pd.DataFrame) -> str:
    rows = [(name, _unique(df, col)) for col, name in PROVENANCE]
    body = "\n".join(f"| {name} | {value} |" for name, value in rows)
    return "| what | value |\n|:--|:--|\n" + body


def _jobs(rows: pd.DataFrame) -> pd.Series:
    if "job" in rows.columns and rows["job"].notna().all():
        return rows["job"].astype(str)
    return rows[list(views.CONFIG_COLUMNS)].astype(str).agg(",".join, axis=1)


def design(study: Study) -> Design | None:
    """The sequential design of an adaptive study (None: a fixed one)."""
    return Design(study.batch, study.budget.replicates) if study.adaptive else None


def as_run(study: Study, out_dir: Path) -> tuple[Study, str]:
    """The study as its last run ran it (the design, batch and budget the driver recorded in
    ``study.json``, which command-line options may have changed), and why that run stopped."""
    state = studies.read_state(out_dir)
    if state.get("study") != study.name:
        return study, ""
    try:
        if state.get("design") == "sequential":
            budget = studies.Budget(int(state["budget"]["replicates"]),
                                    float(state["budget"]["minutes"]))  # fmt: skip
            study = dataclasses.replace(study, replicates=None, batch=int(state["batch"]),
                                        budget=budget)  # fmt: skip
        elif state.get("design") == "fixed" and state.get("replicates"):
            study = dataclasses.replace(study, replicates=int(state["replicates"]))
    except (KeyError, TypeError, ValueError):
        return study, ""
    return study, str(state.get("stopped", ""))


def _configuration(df: pd.DataFrame, names: Sequence[str] = tuple(EXPERIMENTS)) -> str:
    lines = [
        "| experiment | jobs | failed jobs | folds | epochs | batch size | lr | rows |",
        "|:--|--:|--:|--:|--:|--:|:--|--:|",
    ]
    for name in names:
        rows = views.experiment_rows(df, name)
        if rows.empty:
            lines.append(f"| {name} | 0 | — | — | — | — | — | 0 |")
            continue
        jobs = _jobs(rows)
        failed = jobs[rows["status"] == "failed"].nunique()
        curves = rows[rows["fold"].notna()]
        folds = len(curves[["seed", "fold"]].drop_duplicates())
        epochs = "—" if curves.empty else str(int(curves["epoch"].max()))
        lines.append(
            f"| {name} | {jobs.nunique()} | {failed} | {folds} | {epochs} | "
            f"{_unique(rows, 'batch_size')} | {_unique(rows, 'lr')} | {len(rows)} |"
        )
    return "\n".join(lines)


def _missing(df: pd.DataFrame, names: Sequence[str] = tuple(EXPERIMENTS)) -> list[str]:
    out = []
    for name, exp in ((n, EXPERIMENTS[n]) for n in names):
        if views.experiment_rows(df, name).empty:
            out.append(f"- `{name}` ({exp.figure}, {exp.what}): not in the results (not run).")
            continue
        for config, why in views.missing_configs(df, name):
            if why != "failed":  # failed jobs are listed below, with their error
                why = figures.REASONS[why]
                out.append(f"- `{name}`: {views.describe_config(config)}: {why}.")
        curves, _ = views.curve_rows(df, name)
        out += [f"- `{name}`: {note}." for note in views.diverged_notes(curves, exp.swept)]
        out += [f"- `{name}`: {note}." for note in views.partial_notes(curves, exp.swept)]
    for row in views.failed_jobs(df[df["experiment"].isin(names)]).itertuples(index=False):
        error = tables.cell(getattr(row, "error", "") or "no error message", 200)
        job = getattr(row, "job", None) or ""
        error = error.replace("`", "'")
        out.append(f"- failed job `{row.experiment}` {job}: `{error}`")
    out += [f"- {note}." for note in df.attrs.get("ignored", [])]
    unknown = sorted(set(df["experiment"].dropna().unique()) - set(names))
    for name in unknown:
        n = int((df["experiment"] == name).sum())
        known = "this report knows" if names == tuple(EXPERIMENTS) else "of this study"
        out.append(f"- `{name}`: not an experiment {known}; its {n} rows are ignored.")
    return out


def _figure_section(fig: figures.FigureResult) -> str:
    png, svg = (p.name for p in fig.files)
    lines = [f"### {fig.title}: {fig.what}", "", f"![{fig.title}]({png})", ""]
    if fig.available:
        lines.append(f"{fig.caption} Vector version: [{svg}]({svg}).")
    else:
        lines.append(f"**Not drawn: {fig.caption}.**")
    lines += [f"\n> Note: {note}." for note in fig.notes if fig.available]
    return "\n".join(lines)


def speed_section(out_dir: Path) -> str | None:
    """The "Speed (pytest-benchmark)" section: OUT/benchmarks/summary.md verbatim, ratio.png
    embedded; None when the speed benchmark has not written its summary."""
    bench_dir = out_dir / "benchmarks"
    summary = bench_dir / "summary.md"
    if not summary.is_file():
        return None
    parts = ["## Speed (pytest-benchmark)", "", summary.read_text(encoding="utf-8").rstrip()]
    if (bench_dir / "ratio.png").is_file():
        parts += ["", "![custom / torch time ratio](benchmarks/ratio.png)"]
    return "\n".join(parts)


def readme(
    df: pd.DataFrame,
    figs: list[figures.FigureResult],
    tabs: tables.Tables,
    verdicts: list[claims.Claim],
    out_dir: Path,
    results_name: str,
    replay: str = "",
) -> str:
    """The text of ``README.md`` for one build (``replay``: the adaptive design replayed)."""
    missing = _missing(df)
    counts = {v: sum(c.verdict == v for c in verdicts) for v in stats.VERDICTS}
    sections = [
        '# Results: reproducing "Deep Learning framework implemented with Python" (EE-559)',
        f"The report reproduced: {CITATION}.",
        f"Generated by `python -m bench.report` (`make report`) from `{results_name}` "
        f"({len(df)} rows); do not edit by hand: every figure, table and verdict below is "
        "computed from that file.",
        "## What produced these results",
        _provenance(df),
        _configuration(df),
        "## Missing or partial results",
        "\n".join(missing)
        if missing
        else "Nothing missing: every expected configuration "
        "has finished folds, no job failed and no fold diverged.",
        "## The paper's claims, checked",
        "Each claim is a specification (its experiment, metric, window of epochs, pinned "
        "settings and margin) and its rule below is generated from it. Replicates share their "
        "data, initial weights and batch order across the settings compared, so a comparison "
        "is decided from the per-replicate paired differences: the estimate is their mean, "
        "with its 95% confidence interval, and the share of replicates on the claim's side "
        "(the probability of improvement) with its 95% interval. **supported**: the interval "
        "lies on the claim's side of its threshold (for equivalence, inside the band: two "
        "one-sided tests); **contradicted**: on the other side; **inconclusive**: it spans it; "
        "**not evaluated**: fewer than 2 replicates or a setting missing. The paper's "
        "single-run numbers are checked against the 95% prediction interval of one run. For "
        "a claim with several parts, the line shows its weakest part. This run: "
        + ", ".join(f"{n} {v}" for v, n in counts.items())
        + ". Errors are fractions (0.100 is 10%); pp = percentage points "
        "([CSV](claims.csv)).",
        claims.method_markdown(verdicts),
        claims.multiplicity_markdown(verdicts),
        claims.claims_markdown(verdicts),
        "### Replicates: used, needed, shared",
        "For each claim (its weakest part): the spread of its per-replicate numbers (sd), the "
        "replicates used, the 95% interval's half-width on the side facing the threshold, the "
        "replicates a decision would need at the observed effect (that side narrows as "
        "1/√n), and the other "
        "claims read from the same runs (their errors are correlated; each experiment draws "
        "its own replicates, so no two experiments share any).",
        claims.power_markdown(verdicts),
        *(
            [
                "### Replicates added until decided: the adaptive design, replayed",
                "What `replicates: auto` would have concluded on these same replicates: a "
                "look after every batch, each claim read from its anytime-valid interval "
                f"({sequential.METHOD}; `bench/report/sequential.py`), stopping at its first "
                "decided look. Replicate k draws the same data, initial weights and batch "
                "order whatever the batch, so this is what an adaptive run would have seen, up "
                "to float32 rounding (a stacked program's rounding depends on how many models "
                "it holds).",
                replay,
            ]
            if replay
            else []
        ),
        "## Figures",
        "Curves are the mean over replicates with a ±1 sd band (sd over replicates, not a "
        "confidence interval); the learning-rate sensitivity figure shows 95% bootstrap "
        "confidence intervals and the variance figure 95% generalized confidence intervals, "
        "as their captions say. Vector versions (SVG) beside each PNG.",
        *(_figure_section(f) for f in figs),
        "## Table III: framework performances",
        "`fig5_frameworks`, float32, last epoch: accuracy = 1 − error, time = cumulative "
        "training seconds; mean ± sd over folds, the paper's row beside each "
        "([CSV](table3.csv), [LaTeX](table3.tex)).",
        tabs.table3_md,
        '## How equivalent is "equivalent"?',
        "Custom framework against torch.nn from identical initial weights, data and batch "
        "order: |custom − torch| of the training loss over folds and epochs "
        "([CSV](equivalence.csv)); see Figure 5 (c).",
        tabs.equivalence_md,
        "## Table IV: a real image task (beyond the paper)",
        "`digits`: scikit-learn's bundled 8×8 handwritten digits (1,797 images, 10 classes; "
        "each fold draws its own 1,437 / 360 split), an MLP and a CNN (Conv-BatchNorm-ReLU-"
        "MaxPool twice, then Linear), each trained by both frameworks from the same initial "
        "weights, split and batch order; last epoch, mean ± sd over folds ([CSV](table4.csv)). "
        "The paper names convolutions and batch normalisation as its future work.",
        tabs.table4_md,
        "## Tuned learning rates",
        "`fig3_tuned`: every optimizer trains the same 16-value log grid of learning rates on "
        "every replicate, with 200 of the 1000 training points held out. Each replicate picks "
        "its own rate on its own validation split (the lowest final validation error among the "
        "rates at which it did not diverge) and is judged on the test set at that rate, so the "
        "tuning is part of the replicate and its variance is inside the interval (Bouthillier "
        "et al. 2021); beside it, the paper's hand-picked rate (`fig3_optimizers`). Every "
        "replicate's choice: [CSV](lr_selection.csv). The tuned comparison of the optimizers "
        "is the claim *Adam and RMSprop beat SGD (learning rates tuned in each replicate)* "
        "above.",
        tabs.lr_selection_md,
        "## Where the spread comes from",
        "`variance_sources`: the Table III configuration trained on every combination of L "
        "draws of the data points, L of the initial weights and L of the mini-batch order "
        "(`vary=crossed`, L³ runs, one per combination). A three-way crossed random-effects "
        "ANOVA without replication splits the variance of the final test error into seven "
        "components: each stream, the three two-way interactions, and a residual that is the "
        "three-way interaction (with one run per combination the two cannot be told apart). "
        "The components are method-of-moments estimates from the mean squares (expected mean "
        "squares of the balanced random model; Searle, Casella & McCulloch 1992), a negative "
        "estimate truncated at 0; they sum to the variance of one run whose three streams are "
        "all drawn afresh, and each share is a component over that sum, so the shares sum to "
        "100%. The 95% intervals are generalized confidence intervals (Weerahandi 1993) from "
        "the mean squares' χ² pivots: in simulation they covered the true components and "
        "shares at about the nominal rate, where Satterthwaite's approximation and the "
        "percentile parametric bootstrap fell short. A shuffle draw is a permutation of the "
        "indices of i.i.d. points, so across data draws it has no effect of its own: the batch "
        "order's part is the data × shuffle interaction, and the shuffle and init × shuffle "
        "components are zero in expectation ([CSV](variance.csv)).",
        tabs.variance_md,
        "## Final errors per experiment",
        "Mean ± sd over the folds that reached the final epoch ([CSV](summary.csv)).",
        tabs.summary_md.rstrip(),
    ]
    speed = speed_section(out_dir)
    if speed:
        sections.append(speed)
    return "\n\n".join(sections) + "\n"


def _claims_csv(out_dir: Path, verdicts: list[claims.Claim]) -> Path:
    path = out_dir / "claims.csv"
    atomic.write_text(path, claims.claims_frame(verdicts).to_csv(index=False, lineterminator="\n"))
    return path


def build_report(
    results: pd.DataFrame,
    out_dir: Path,
    results_name: str = "results.parquet",
    study: Study | None = None,
    workers: int = 1,
) -> Report:
    """Write every figure, table, ``claims.csv`` and ``README.md`` of ``results`` to ``out_dir``:
    the paper's report (``study`` None or the paper's), or a study's own (`study_report`).
    ``workers`` > 1: the figures are drawn in that many processes while the tables and claims
    are computed here (`figures.drawing`); the files are the same."""
    out_dir = Path(out_dir)
    study, stopped = as_run(study or studies.load(studies.DEFAULT), out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    df = views.prepare(results)
    if study.name != studies.DEFAULT:
        return study_report(df, out_dir, results_name, study, stopped, workers)
    with figures.drawing(df, out_dir, figures.FIGURES, workers) as drawn:
        tabs = tables.build_tables(df, out_dir)
        plan = design(study)
        verdicts = claims.evaluate_claims(df, study.claims, plan, stopped)
        replay = ""
        if plan is None:  # what replicates=auto would have concluded on these replicates
            adaptive = Design(study.batch, study.budget.replicates)
            replayed = claims.evaluate_claims(df, study.claims, adaptive)
            replay = claims.replay_markdown(verdicts, replayed, adaptive)
        figs = drawn()
    claims_csv = _claims_csv(out_dir, verdicts)
    readme_path = out_dir / "README.md"
    atomic.write_text(readme_path, readme(df, figs, tabs, verdicts, out_dir, results_name, replay))
    files = [p for f in figs for p in f.files] + tabs.files + [claims_csv, readme_path]
    return Report(figs, tabs, verdicts, files)


def study_report(
    df: pd.DataFrame,
    out_dir: Path,
    results_name: str,
    study: Study,
    stopped: str = "",
    workers: int = 1,
) -> Report:
    """A study's own report: its claims, its experiments' figures and final errors."""
    names = [catalog_name(e) for e in study.experiments]
    df = df[df["experiment"].isin(names)].reset_index(drop=True)
    entries = [entry for entry in figures.FIGURES if entry[0] in names]
    with figures.drawing(df, out_dir, entries, workers) as drawn:
        summary = tables.summary(df)
        summary_md = tables.summary_markdown(summary)
        summary_csv = out_dir / "summary.csv"
        atomic.write_text(summary_csv, summary.to_csv(index=False, lineterminator="\n"))
        plan = design(study)
        verdicts = claims.evaluate_claims(df, study.claims, plan, stopped if plan else "")
        figs = drawn()
    claims_csv = _claims_csv(out_dir, verdicts)
    missing = _missing(df, names)
    counts = {v: sum(c.verdict == v for c in verdicts) for v in stats.VERDICTS}
    if plan is not None:
        how = (
            f"Adaptive design (`replicates: auto`): replicates were added in batches of "
            f"{plan.batch}, every claim decided after each batch, until every claim was "
            f"supported or contradicted or the budget ({study.budget.replicates} replicates, "
            f"{study.budget.minutes:g} minutes) was spent"
            + (f"; this run stopped: {stopped}" if stopped else "")
            + f". The intervals are {sequential.METHOD}: they hold at every look at once, so "
            "stopping at a decided look keeps the 2.5% error rate of each one-sided verdict "
            "(Howard et al. 2021; Waudby-Smith et al. 2024)."
        )
        took = ["### Replicates each claim took", claims.decisions_markdown(verdicts, plan.batch)]
    else:
        how = f"Fixed design: {study.replicates} replicates. " + claims.method_markdown(verdicts)
        took = []
    sections = [
        f"# Study `{study.name}`",
        study.description or "",
        f"Generated by `python -m bench.report --study {study.name}` (`make report "
        f"STUDY={study.name}`) from `{results_name}` ({len(df)} rows) and the study's file "
        f"`bench/conf/study/{study.path.name}`; do not edit by hand.",
        "## What produced these results",
        _provenance(df),
        _configuration(df, names),
        "## Missing or partial results",
        "\n".join(missing)
        if missing
        else "Nothing missing: every expected configuration has "
        "finished replicates, no job failed and no replicate diverged.",
        "## Claims",
        how,
        "This run: "
        + ", ".join(f"{n} {v}" for v, n in counts.items())
        + ". Errors are fractions (0.100 is 10%); pp = percentage points ([CSV](claims.csv)).",
        claims.multiplicity_markdown(verdicts),
        claims.claims_markdown(verdicts),
        *took,
        "### Replicates: used, needed, shared",
        claims.power_markdown(verdicts),
        "## Figures",
        "Curves are the mean over replicates with a ±1 sd band (sd over replicates, not a "
        "confidence interval). Vector versions (SVG) beside each PNG.",
        *(_figure_section(f) for f in figs),
        "## Final errors per experiment",
        "Mean ± sd over the replicates that reached the final epoch ([CSV](summary.csv)).",
        summary_md.rstrip(),
    ]
    readme_path = out_dir / "README.md"
    atomic.write_text(readme_path, "\n\n".join(s for s in sections if s) + "\n")
    files = [p for f in figs for p in f.files] + [summary_csv, claims_csv, readme_path]
    return Report(figs, None, verdicts, files)


def catalog_name(experiment: str) -> str:
    """The ``experiment`` column's value of an experiment file's runs (its ``name``)."""
    return EXPERIMENTS[experiment].name if experiment in EXPERIMENTS else experiment


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _input_problem(results: Path) -> str | None:
    """Why ``--results`` cannot be read, in one line (None when it can be tried)."""
    if results.is_dir():
        return (
            f"--results {results} is a directory, not a results file (collect a runs directory "
            "first: python -m bench.collect RUNS --out FILE)"
        )
    if not results.is_file():
        return f"results file not found: {results} (run the sweep, then `python -m bench.collect`)"
    try:
        collect.table_format(results)
    except collect.TableError as exc:
        return str(exc)
    return None


def _output_problem(out: Path) -> str | None:
    """Why the report cannot be written into ``out``, in one line (None when it can be tried)."""
    for parent in (out, *out.parents):
        if parent.exists():
            if not parent.is_dir():
                return f"--out {out}: {parent} is a file, not a directory"
            break
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (2 when the results cannot be read)."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.report",
        description="Build figures, tables and README.md from the results DataFrame.",
    )
    parser.add_argument(
        "--study",
        default=studies.DEFAULT,
        help="the study whose claims to decide (bench/conf/study/NAME.yaml, or a path); "
        f"default: {studies.DEFAULT}",
    )
    parser.add_argument(
        "--results",
        type=Path,
        help="results file written by bench.collect (.parquet, or .csv); default: "
        "OUT/results.parquet",
    )
    parser.add_argument(
        "--out", type=Path, help="directory to write the report into; default: reports[/STUDY]"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=processes.WORKERS,
        help="processes drawing the figures while the tables and claims are computed (1: all "
        f"in this process; the files are the same); default: {processes.WORKERS} (at most the "
        "CPUs this process may use)",
    )
    args = parser.parse_args(argv)
    try:
        study = studies.load(args.study)
    except studies.StudyError as error:
        print(f"bench.report: error: {error}", file=sys.stderr)
        return 2
    out = args.out or studies.report_dir(study.name)
    results = args.results or out / "results.parquet"
    atomic.ignore_file_size_signal()  # past `ulimit -f`: an error we report, not a kill
    problem = _input_problem(results) or _output_problem(out)
    if problem:
        print(f"bench.report: error: {problem}", file=sys.stderr)
        return 2
    workers = max(1, min(args.workers, processes.cpus()))
    try:
        table = views.prepare(read_results(results))
    except (ValueError, OSError, ImportError) as exc:  # pyarrow's errors are ValueError/OSError
        print(f"bench.report: error: {results}: {_first_line(exc)}", file=sys.stderr)
        return 2
    try:
        report = build_report(table, out, results.name, study, workers)
    except ValueError as exc:
        print(f"bench.report: error: {results}: {_first_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = exc.filename or out
        print(
            f"bench.report: error: cannot write the report to {where}: {exc.strerror or exc} "
            "(files already written are whole; the others keep their previous content)",
            file=sys.stderr,
        )
        return 2
    drawn = sum(f.available for f in report.figures)
    verdicts = ", ".join(f"{c.key} {c.status}" for c in report.claims)
    print(
        f"bench.report: wrote {len(report.files)} files to {out} "
        f"({drawn}/{len(report.figures)} figures drawn); claims: {verdicts}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
