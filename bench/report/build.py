"""Build the whole report (figures, tables, claims, README.md) from the results DataFrame.

    python -m bench.report [--results reports/results.parquet] [--out reports]

Reads only the results file (Parquet, or CSV by extension) and, if present, the speed benchmark's
``OUT/benchmarks/summary.md`` and ``ratio.png``. The output depends on nothing else (no clock, no
paths), so two runs on the same results write byte-identical files.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench import atomic
from bench.harness import collect
from bench.report import claims, figures, stats, tables, views
from bench.report.views import EXPERIMENTS

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
    tables: tables.Tables
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


def _configuration(df: pd.DataFrame) -> str:
    lines = [
        "| experiment | jobs | failed jobs | folds | epochs | batch size | lr | rows |",
        "|:--|--:|--:|--:|--:|--:|:--|--:|",
    ]
    for name in EXPERIMENTS:
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


def _missing(df: pd.DataFrame) -> list[str]:
    out = []
    for name, exp in EXPERIMENTS.items():
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
    for row in views.failed_jobs(df).itertuples(index=False):
        error = tables.cell(getattr(row, "error", "") or "no error message", 200)
        job = getattr(row, "job", None) or ""
        error = error.replace("`", "'")
        out.append(f"- failed job `{row.experiment}` {job}: `{error}`")
    out += [f"- {note}." for note in df.attrs.get("ignored", [])]
    unknown = sorted(set(df["experiment"].dropna()) - set(EXPERIMENTS))
    for name in unknown:
        n = int((df["experiment"] == name).sum())
        out.append(f"- `{name}`: not an experiment this report knows; its {n} rows are ignored.")
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
) -> str:
    """The text of ``README.md`` for one build."""
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


def build_report(
    results: pd.DataFrame, out_dir: Path, results_name: str = "results.parquet"
) -> Report:
    """Write every figure, table, ``claims.csv`` and ``README.md`` of ``results`` to ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    df = views.prepare(results)
    figs = figures.build_figures(df, out_dir)
    tabs = tables.build_tables(df, out_dir)
    verdicts = claims.evaluate_claims(df)
    claims_csv = out_dir / "claims.csv"
    atomic.write_text(
        claims_csv, claims.claims_frame(verdicts).to_csv(index=False, lineterminator="\n")
    )
    readme_path = out_dir / "README.md"
    atomic.write_text(readme_path, readme(df, figs, tabs, verdicts, out_dir, results_name))
    files = [p for f in figs for p in f.files] + tabs.files + [claims_csv, readme_path]
    return Report(figs, tabs, verdicts, files)


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
        "--results",
        type=Path,
        default=Path("reports/results.parquet"),
        help="results file written by bench.collect (.parquet, or .csv)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("reports"), help="directory to write the report into"
    )
    args = parser.parse_args(argv)
    atomic.ignore_file_size_signal()  # past `ulimit -f`: an error we report, not a kill
    problem = _input_problem(args.results) or _output_problem(args.out)
    if problem:
        print(f"bench.report: error: {problem}", file=sys.stderr)
        return 2
    try:
        results = views.prepare(read_results(args.results))
    except (ValueError, OSError, ImportError) as exc:  # pyarrow's errors are ValueError/OSError
        print(f"bench.report: error: {args.results}: {_first_line(exc)}", file=sys.stderr)
        return 2
    try:
        report = build_report(results, args.out, args.results.name)
    except ValueError as exc:
        print(f"bench.report: error: {args.results}: {_first_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = exc.filename or args.out
        print(
            f"bench.report: error: cannot write the report to {where}: {exc.strerror or exc} "
            "(files already written are whole; the others keep their previous content)",
            file=sys.stderr,
        )
        return 2
    drawn = sum(f.available for f in report.figures)
    verdicts = ", ".join(f"{c.key} {c.status}" for c in report.claims)
    print(
        f"bench.report: wrote {len(report.files)} files to {args.out} "
        f"({drawn}/{len(report.figures)} figures drawn); claims: {verdicts}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
