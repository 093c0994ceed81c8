"""Table III, the per-experiment summary and the custom-vs-torch equivalence table.

Every number is a pandas groupby/agg over the final-epoch rows of `bench.views`; sd is the sample
standard deviation over folds (ddof=1). Tables are written as Markdown (tabulate, through
``DataFrame.to_markdown``), CSV at full precision and, for Table III, LaTeX.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench import atomic
from bench.report import variance, views
from bench.report.views import COLUMN_TITLES, EXPERIMENTS, LEVELS, label

PAPER_TABLE3: dict[str, dict[str, float]] = {
    "custom": {"train_acc": 0.972, "test_acc": 0.947, "time_s": 2.012},
    "torch": {"train_acc": 0.991, "test_acc": 0.949, "time_s": 1.614},
}
"""Table III of the report being reproduced (no spread given)."""

TABLE3_DTYPE = "float32"
EQUIVALENCE_COLUMNS = [
    "engine",
    "dtype",
    "n_folds",
    "last_epoch",
    "max_abs_diff_epoch1",
    "median_abs_diff_last",
    "max_abs_diff_last",
    "max_abs_diff_any",
    "n_zero",
    "n_pairs",
    "max_abs_diff_test_last",
]
MISSING = "—"


@dataclass
class Tables:
    """The report's tables, as data and as Markdown, and the files they were written to."""

    table3: pd.DataFrame
    table3_md: str
    summary: pd.DataFrame
    summary_md: str
    equivalence: pd.DataFrame
    equivalence_md: str
    table4: pd.DataFrame
    table4_md: str
    lr_selection: pd.DataFrame
    lr_selection_md: str
    variance: pd.DataFrame
    variance_md: str
    files: list[Path]


def pm(mean: float, sd: float, digits: int = 3) -> str:
    """``'0.972 ± 0.004'``; ``'0.972 (1 fold: no sd)'`` when the spread is undefined; ``'—'``
    when there is no mean."""
    if mean is None or pd.isna(mean):
        return MISSING
    if sd is None or pd.isna(sd):
        return f"{mean:.{digits}f} (1 fold: no sd)"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def _number(value: float, digits: int = 3) -> str:
    return MISSING if pd.isna(value) else f"{value:.{digits}f}"


def _sci(value: float) -> str:
    return MISSING if pd.isna(value) else "0" if value == 0 else f"{value:.2e}"


def cell(text: object, limit: int = 80) -> str:
    """One Markdown table cell: first line only, pipes escaped, at most ``limit`` characters."""
    lines = str(text).strip().splitlines() or [""]
    first = lines[0] if len(lines[0]) <= limit else lines[0][: limit - 1] + "…"
    return first.replace("|", "\\|")


def _stats(final: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return final.groupby(keys, dropna=False).agg(
        final_epoch=("final_epoch", "first"),
        n_final=("test_error", "size"),
        train_error_mean=("train_error", "mean"),
        train_error_sd=("train_error", "std"),
        test_error_mean=("test_error", "mean"),
        test_error_sd=("test_error", "std"),
        train_seconds_mean=("train_seconds", "mean"),
        train_seconds_sd=("train_seconds", "std"),
    )


ACCURACY_COLUMNS = [f"{m}_{s}" for m in ("train_acc", "test_acc", "time_s") for s in ("mean", "sd")]


def _accuracy_stats(curves: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per ``keys``: folds, and mean and sd over folds of the last epoch's train and test
    accuracy (1 − error) and training time."""
    final = views.final_rows(curves, keys)
    final = final.assign(
        train_acc=1.0 - final["train_error"],
        test_acc=1.0 - final["test_error"],
        time_s=final["train_seconds"],
    )
    return final.groupby(keys).agg(
        n_folds=("test_acc", "size"),
        train_acc_mean=("train_acc", "mean"),
        train_acc_sd=("train_acc", "std"),
        test_acc_mean=("test_acc", "mean"),
        test_acc_sd=("test_acc", "std"),
        time_s_mean=("time_s", "mean"),
        time_s_sd=("time_s", "std"),
    )


STACKED_TIME = ["stacked_time_s_mean", "stacked_time_s_sd"]


def table4(df: pd.DataFrame) -> pd.DataFrame:
    """Table IV, beyond the paper: the ``digits`` task, last epoch, per model and framework:
    folds, and mean and sd over folds of train and test accuracy and training time, then mean
    and sd of ``stacked_time_s``.

    As Table III: one model trained alone (``engine=sequential``, or the only engine in the
    results); beside it the training time per model of the same job trained as one stacked
    program (the custom stack against torch.func's)."""
    columns = ["model", "framework", "n_folds", *ACCURACY_COLUMNS, *STACKED_TIME]
    curves, _ = views.curve_rows(df, "digits")
    if curves.empty:
        return pd.DataFrame(columns=columns)
    engines = set(curves["engine"])
    alone = curves[curves["engine"] == "sequential"] if "sequential" in engines else curves
    out = _accuracy_stats(alone, ["model", "framework"])
    stacked = curves[curves["engine"] == "stacked"]
    if "sequential" in engines and not stacked.empty:
        times = _accuracy_stats(stacked, ["model", "framework"])[["time_s_mean", "time_s_sd"]]
        out = out.join(times.set_axis(STACKED_TIME, axis=1))
    out = out.reset_index().reindex(columns=columns)
    out = out.sort_values(["model", "framework"], key=_level_rank, kind="mergesort")
    return out.reset_index(drop=True)


def table4_markdown(t: pd.DataFrame) -> str:
    """Table IV as Markdown (mean ± sd over folds)."""
    if t.empty:
        return "Not available: `digits` is not in the results."
    shown = pd.DataFrame(
        {
            "Model": t["model"].map(label),
            "Framework": t["framework"].map(label),
            "Train accuracy": [
                pm(m, d) for m, d in zip(t["train_acc_mean"], t["train_acc_sd"], strict=True)
            ],
            "Test accuracy": [
                pm(m, d) for m, d in zip(t["test_acc_mean"], t["test_acc_sd"], strict=True)
            ],
            "Time (s)": [pm(m, d) for m, d in zip(t["time_s_mean"], t["time_s_sd"], strict=True)],
            "Time per model, stacked (s)": [
                MISSING if pd.isna(m) else pm(m, d)
                for m, d in zip(t["stacked_time_s_mean"], t["stacked_time_s_sd"], strict=True)
            ],
            "Folds": t["n_folds"].astype(str),
        }
    )
    return shown.to_markdown(index=False, colalign=("left", "left", *["right"] * 5))


def table3(df: pd.DataFrame) -> pd.DataFrame:
    """Table III from ``fig5_frameworks``, float32, last epoch, with the paper's row beside each.

    accuracy = 1 − error, time = ``train_seconds`` at the last epoch; mean and sd over folds.
    Columns: framework, source ('this run' | 'paper'), n_folds, then mean and sd of train_acc,
    test_acc and time_s, then mean and sd of stacked_time_s. A framework without results keeps
    its row, with NaN and n_folds 0.

    The paper's meaning is kept: one model trained alone (``engine=sequential``). Beside it,
    ``stacked_time_s``: the training time per model of the same job trained as one stacked
    program (the custom stack against torch.func's), the program's time over its models.
    """
    curves, _ = views.curve_rows(df, "fig5_frameworks")
    curves = curves[curves["dtype"] == TABLE3_DTYPE]
    stats = _accuracy_stats(curves[curves["engine"] == "sequential"], ["framework"])
    stacked = _accuracy_stats(curves[curves["engine"] == "stacked"], ["framework"])
    rows = []
    for fw, paper in PAPER_TABLE3.items():
        ours = stats.loc[fw].to_dict() if fw in stats.index else {"n_folds": 0}
        if fw in stacked.index:
            ours |= {
                "stacked_time_s_mean": stacked.loc[fw, "time_s_mean"],
                "stacked_time_s_sd": stacked.loc[fw, "time_s_sd"],
            }
        rows.append({"framework": fw, "source": "this run", **ours})
        rows.append(
            {"framework": fw, "source": "paper", **{f"{k}_mean": v for k, v in paper.items()}}
        )
    out = pd.DataFrame(rows)
    out["n_folds"] = out["n_folds"].astype("Int64")
    stacked = ["stacked_time_s_mean", "stacked_time_s_sd"]
    return out.reindex(columns=["framework", "source", "n_folds", *ACCURACY_COLUMNS, *stacked])


def _table3_display(t: pd.DataFrame, plus_minus: str) -> pd.DataFrame:
    def fmt(row: pd.Series, metric: str) -> str:
        if row["source"] == "paper":  # the paper gives no spread
            return _number(row[f"{metric}_mean"])
        return pm(row[f"{metric}_mean"], row[f"{metric}_sd"]).replace("±", plus_minus)

    return pd.DataFrame(
        {
            "Framework": [label(f) for f in t["framework"]],
            "Source": ["this run" if s == "this run" else "paper (Table III)" for s in t["source"]],
            "Train accuracy": [fmt(r, "train_acc") for _, r in t.iterrows()],
            "Test accuracy": [fmt(r, "test_acc") for _, r in t.iterrows()],
            "Time (s)": [fmt(r, "time_s") for _, r in t.iterrows()],
            "Time per model, stacked (s)": [
                MISSING if r["source"] == "paper" else fmt(r, "stacked_time_s")
                for _, r in t.iterrows()
            ],
            "Folds": [
                MISSING if s == "paper" else str(n)
                for s, n in zip(t["source"], t["n_folds"], strict=True)
            ],
        }
    )


def table3_markdown(t: pd.DataFrame) -> str:
    """Table III as a Markdown table (mean ± sd over folds)."""
    shown = _table3_display(t, "±")
    return shown.to_markdown(index=False, colalign=("left", "left", *["right"] * 5))


def table3_latex(t: pd.DataFrame) -> str:
    """Table III as a LaTeX ``table`` (booktabs), caption and label included."""
    shown = _table3_display(t, r"$\pm$").replace({MISSING: "--"})
    return shown.to_latex(
        index=False,
        escape=False,
        column_format="llrrrrr",
        caption=(
            "Framework performances: mean $\\pm$ sd over folds at the last epoch "
            "(float32), beside the paper's Table III."
        ),
        label="tab:framework-performances",
        position="htbp",
    )


def _level_rank(series: pd.Series) -> pd.Series:
    levels = LEVELS.get(str(series.name))
    if levels is None:
        return series
    return series.map(lambda v: levels.index(v) if v in levels else len(levels))


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Final train/test error and time per configuration of every known experiment.

    One row per configuration (expected ones that never ran included). Columns: experiment, the
    configuration columns (NaN where an experiment does not vary them), final_epoch, n_folds,
    n_final (folds reaching the final epoch with finite results), n_diverged, n_failed_jobs,
    error (first failure message), then mean and sd of train_error, test_error, train_seconds.
    """
    parts = []
    for name in EXPERIMENTS:
        rows = views.experiment_rows(df, name)
        if rows.empty:
            continue
        keys = views.config_keys(rows, name)
        curves = rows[rows["fold"].notna() & rows["epoch"].notna()]
        curves = curves.astype({"fold": "int64", "epoch": "int64"})
        stats = _stats(views.final_rows(curves, keys), keys)
        units = views.diverged_units(curves, keys)
        folds = units.groupby(keys, dropna=False).agg(
            n_folds=("diverged", "size"), n_diverged=("diverged", "sum")
        )
        failed = rows[rows["status"] == "failed"].groupby(keys, dropna=False)
        fails = failed.agg(n_failed_jobs=("status", "size"), error=("error", "first"))
        merged = folds.join([stats, fails], how="outer").reset_index()
        not_run = [c for c, why in views.missing_configs(df, name) if why == "not run"]
        if not_run:
            merged = pd.concat([merged, pd.DataFrame(not_run)], ignore_index=True)
        merged = merged.sort_values(keys, key=_level_rank, kind="mergesort")
        parts.append(merged.assign(experiment=name))
    if not parts:
        return pd.DataFrame(columns=["experiment", *views.CONFIG_COLUMNS])
    out = pd.concat(parts, ignore_index=True)
    for col in ("n_folds", "n_final", "n_diverged", "n_failed_jobs"):
        out[col] = out[col].fillna(0).astype("int64")
    config = [c for c in (*views.CONFIG_COLUMNS, "lr") if c in out.columns]
    stats_cols = [c for c in out.columns if c not in ("experiment", *config)]
    order = ["final_epoch", "n_folds", "n_final", "n_diverged", "n_failed_jobs", "error"]
    rest = [c for c in stats_cols if c not in order]
    return out[["experiment", *config, *order, *rest]]


def _status(row: pd.Series) -> str:
    parts = []
    if row["n_failed_jobs"]:
        parts.append(f"failed: {row['error']}")
    if row["n_diverged"]:
        parts.append(f"{row['n_diverged']}/{row['n_folds']} folds diverged")
    if not row["n_folds"] and not row["n_failed_jobs"]:
        parts.append("not run")
    return "; ".join(parts) or "ok"


def summary_markdown(s: pd.DataFrame) -> str:
    """One Markdown table per experiment: final train/test error mean ± sd per configuration."""
    blocks = []
    for name, exp in EXPERIMENTS.items():
        part = s[s["experiment"] == name]
        if part.empty:
            blocks.append(f"### {name} ({exp.what})\n\nNot in the results.\n")
            continue
        keys = [c for c in (*views.CONFIG_COLUMNS, "lr") if c in part and part[c].notna().any()]
        shown = pd.DataFrame({COLUMN_TITLES[k]: part[k].map(_key_text) for k in keys})
        epochs = part["final_epoch"].dropna()
        shown["Final epoch"] = [MISSING if pd.isna(e) else str(int(e)) for e in part["final_epoch"]]
        shown["Folds"] = [f"{a}/{b}" for a, b in zip(part["n_final"], part["n_folds"], strict=True)]
        for metric, title in (
            ("train_error", "Final train error"),
            ("test_error", "Final test error"),
            ("train_seconds", "Time (s)"),
        ):
            shown[title] = [
                pm(m, d) for m, d in zip(part[f"{metric}_mean"], part[f"{metric}_sd"], strict=True)
            ]
        shown["Status"] = [cell(_status(r)) for _, r in part.iterrows()]
        epochs_note = "" if epochs.empty else f", at epoch {int(epochs.max())}"
        head = f"### {name} ({exp.what}{epochs_note})"
        blocks.append(f"{head}\n\n{shown.to_markdown(index=False)}\n")
    return "\n".join(blocks)


def _key_text(value: object) -> str:
    if isinstance(value, float):
        return MISSING if math.isnan(value) else f"{value:g}"
    return label(value)


def equivalence(df: pd.DataFrame) -> pd.DataFrame:
    """How far 'equivalent' is: |custom − torch| per engine and dtype, from ``fig5_frameworks``.

    Columns: engine, dtype, n_folds, last_epoch, max_abs_diff_epoch1, median_abs_diff_last,
    max_abs_diff_last, max_abs_diff_any (all |Δ train loss|), n_zero / n_pairs (fold × epoch pairs
    with exactly equal loss), max_abs_diff_test_last (|Δ test error| at the last epoch).
    """
    diffs = views.framework_differences(df)
    rows = []
    for (engine, dtype), d in diffs.groupby(["engine", "dtype"], sort=False):
        last = int(d["epoch"].max())
        at_last = d[d["epoch"] == last]
        rows.append(
            {
                "engine": engine,
                "dtype": dtype,
                "n_folds": len(d[["seed", "fold"]].drop_duplicates()),
                "last_epoch": last,
                "max_abs_diff_epoch1": d.loc[d["epoch"] == 1, "abs_diff"].max(),
                "median_abs_diff_last": at_last["abs_diff"].median(),
                "max_abs_diff_last": at_last["abs_diff"].max(),
                "max_abs_diff_any": d["abs_diff"].max(),
                "n_zero": int((d["abs_diff"] == 0).sum()),
                "n_pairs": len(d),
                "max_abs_diff_test_last": at_last["abs_diff_test"].max(),
            }
        )
    out = pd.DataFrame(rows, columns=EQUIVALENCE_COLUMNS)
    return out.sort_values(
        ["engine", "dtype"], key=_level_rank, kind="mergesort", ignore_index=True
    )


def equivalence_markdown(e: pd.DataFrame) -> str:
    """The equivalence table in Markdown (|Δ| in scientific notation)."""
    if e.empty:
        return "Not available: needs both frameworks in `fig5_frameworks`."
    compared = {
        "sequential": "one model: custom vs torch.nn",
        "stacked": "stacked: custom stack vs torch.func stack",
    }
    shown = pd.DataFrame(
        {
            "Engine": e["engine"].map(lambda v: compared.get(v, v)),
            "dtype": e["dtype"],
            "Folds": e["n_folds"].astype(str),
            "max abs Δ loss, epoch 1": e["max_abs_diff_epoch1"].map(_sci),
            "median abs Δ loss, last epoch": e["median_abs_diff_last"].map(_sci),
            "max abs Δ loss, last epoch": e["max_abs_diff_last"].map(_sci),
            "max abs Δ loss, any epoch": e["max_abs_diff_any"].map(_sci),
            "exactly equal (fold × epoch)": [
                f"{z}/{n}" for z, n in zip(e["n_zero"], e["n_pairs"], strict=True)
            ],
            "max abs Δ test error, last epoch": e["max_abs_diff_test_last"].map(_sci),
        }
    )
    return shown.to_markdown(index=False)


def _write(path: Path, text: str) -> Path:
    return atomic.write_text(path, text if text.endswith("\n") else text + "\n")


TUNED = "fig3_tuned"
LR_SELECTION_COLUMNS = [
    "optimizer",
    "seed",
    "fold",
    "chosen_lr",
    "val_error",
    "test_error",
    "n_lrs",
    "n_excluded",
]
LR_SUMMARY_COLUMNS = [
    "optimizer",
    "n_folds",
    "modal_lr",
    "n_modal",
    "n_distinct",
    "chosen_min",
    "chosen_max",
    "test_error_mean",
    "test_error_sd",
    "hand_picked_lr",
    "hand_picked_test_error_mean",
    "lr_min",
    "lr_max",
    "n_lrs",
    "n_unchosen",
]


def lr_selection(df: pd.DataFrame) -> pd.DataFrame:
    """Per optimizer and replicate of ``fig3_tuned``: the learning rate that replicate chose on
    its own validation split (`views.lr_choices`), its validation error, and, judged on the test
    set afterwards, its final test error at that rate; the grid's size and the rates at which
    the replicate diverged."""
    rows = views.experiment_rows(df, TUNED, grid=True)
    choices = views.lr_choices(rows)
    if choices.empty:
        return pd.DataFrame(columns=LR_SELECTION_COLUMNS)
    tuned, _ = views.curve_rows(df, TUNED)
    test = views.final_rows(tuned, ["optimizer"])[["optimizer", "seed", "fold", "test_error"]]
    out = choices.merge(test, on=["optimizer", "seed", "fold"], how="left")
    out = out.sort_values(["optimizer", "seed", "fold"], key=_level_rank, kind="mergesort")
    return out[LR_SELECTION_COLUMNS].reset_index(drop=True)


def lr_summary(df: pd.DataFrame, per_replicate: pd.DataFrame) -> pd.DataFrame:
    """Per optimizer of ``fig3_tuned``: how its replicates chose (`views.lr_selection`), the test
    error at each replicate's own choice (mean, sd), beside the paper's hand-picked rate and its
    test error (``fig3_optimizers``, other replicates)."""
    chosen = views.lr_selection(views.experiment_rows(df, TUNED, grid=True))
    if chosen.empty:
        return pd.DataFrame(columns=LR_SUMMARY_COLUMNS)
    test = per_replicate.groupby("optimizer")["test_error"]
    hand, _ = views.curve_rows(df, "fig3_optimizers")
    hand_final = views.final_rows(hand, ["optimizer"]).groupby("optimizer")
    out = chosen.assign(
        test_error_mean=chosen["optimizer"].map(test.mean()),
        test_error_sd=chosen["optimizer"].map(test.std()),
        hand_picked_lr=chosen["optimizer"].map(hand_final["lr"].first()),
        hand_picked_test_error_mean=chosen["optimizer"].map(hand_final["test_error"].mean()),
    )
    return out.sort_values("optimizer", key=_level_rank, kind="mergesort")[LR_SUMMARY_COLUMNS]


def _wins(per_replicate: pd.DataFrame, optimizer: str, shown: int = 3) -> str:
    """``'0.1 (14/30), 0.215 (9/30), 0.0464 (5/30), 2 more'``: the rates chosen most often."""
    chosen = per_replicate.loc[per_replicate["optimizer"] == optimizer, "chosen_lr"]
    counts = chosen.value_counts().sort_index(kind="mergesort")
    counts = counts.sort_values(ascending=False, kind="mergesort")
    text = ", ".join(f"{lr:g} ({n}/{len(chosen)})" for lr, n in counts.head(shown).items())
    rest = len(counts) - shown
    return text + (f", {rest} more" if rest > 0 else "")


def lr_selection_markdown(summary: pd.DataFrame, per_replicate: pd.DataFrame) -> str:
    if summary.empty:
        return f"Not available: `{TUNED}` is not in the results."
    shown = pd.DataFrame(
        {
            "Optimizer": summary["optimizer"].map(label),
            "Chosen by the replicates (how often)": [
                _wins(per_replicate, o) for o in summary["optimizer"]
            ],
            "Test error at each replicate's choice": [
                pm(m, d)
                for m, d in zip(summary["test_error_mean"], summary["test_error_sd"], strict=True)
            ],
            "Hand-picked lr": summary["hand_picked_lr"].map(
                lambda v: MISSING if pd.isna(v) else f"{v:g}"
            ),
            "Test error (hand-picked)": summary["hand_picked_test_error_mean"].map(_number),
            "Grid": [
                f"{n} values, {lo:g}–{hi:g}"
                for n, lo, hi in zip(
                    summary["n_lrs"], summary["lr_min"], summary["lr_max"], strict=True
                )
            ],
            "Replicates with every rate diverged": summary["n_unchosen"].astype(str),
        }
    )
    return shown.to_markdown(index=False)


def build_tables(df: pd.DataFrame, out_dir: Path) -> Tables:
    """Compute every table of a prepared results frame and write its files into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    t3 = table3(df)
    s = summary(df)
    e = equivalence(df)
    t3_md, s_md, e_md = table3_markdown(t3), summary_markdown(s), equivalence_markdown(e)
    t4, lrs, v = table4(df), lr_selection(df), variance.variance_table(df)
    t4_md = table4_markdown(t4)
    lrs_md, v_md = lr_selection_markdown(lr_summary(df, lrs), lrs), variance.variance_markdown(v)
    files = [
        _write(out_dir / "table3.md", t3_md),
        _write(out_dir / "table3.tex", table3_latex(t3)),
        _write(out_dir / "table3.csv", t3.to_csv(index=False, lineterminator="\n")),
        _write(out_dir / "summary.md", "# Final errors per experiment\n\n" + s_md),
        _write(out_dir / "summary.csv", s.to_csv(index=False, lineterminator="\n")),
        _write(out_dir / "equivalence.md", e_md),
        _write(out_dir / "equivalence.csv", e.to_csv(index=False, lineterminator="\n")),
        _write(out_dir / "table4.md", t4_md),
        _write(out_dir / "table4.csv", t4.to_csv(index=False, lineterminator="\n")),
        _write(out_dir / "lr_selection.csv", lrs.to_csv(index=False, lineterminator="\n")),
        _write(out_dir / "variance.csv", v.to_csv(index=False, lineterminator="\n")),
    ]
    return Tables(t3, t3_md, s, s_md, e, e_md, t4, t4_md, lrs, lrs_md, v, v_md, files)
