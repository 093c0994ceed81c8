"""Figures 2–5 and the initializer figure, drawn with seaborn from the results DataFrame alone.

Each figure is written as PNG (for the README) and SVG (for papers), byte-identical across runs on
the same results: Agg only, a fixed SVG hash salt, no date and no software version in the metadata.
An experiment without results still gets its files: a figure that says what is missing.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator, PercentFormatter

from bench import atomic, processes
from bench.report import variance, views
from bench.report.views import COLUMN_TITLES, EXPERIMENTS, label

matplotlib.use("Agg")  # headless everywhere; figures are built with the OO API, never pyplot

PALETTE = sns.color_palette("colorblind")
COLOUR_INDEX: dict[str, dict[str, int]] = {
    "framework": {"custom": 0, "torch": 1},
    "dtype": {"float32": 4, "float64": 2},
}
"""Fixed colour per level, so a level keeps its colour when others are missing."""

RC: dict[str, object] = {
    **sns.axes_style("whitegrid"),
    **sns.plotting_context("paper", font_scale=1.2),
    "font.family": "DejaVu Sans",
    "svg.fonttype": "path",
    "svg.hashsalt": "ee559-report",
    "legend.framealpha": 0.9,
}
PNG_DPI = 150
PNG_METADATA: dict[str, str | None] = {"Software": None}
SVG_METADATA: dict[str, str | None] = {"Date": None, "Creator": "bench.figures (matplotlib)"}
REASONS = {"failed": "job failed", "diverged": "every fold diverged", "not run": "not run"}
ZOOM_FRACTION = 0.2
"""Panel (b) of a zoomed figure shows the last fifth of the epochs."""


@dataclass
class FigureResult:
    """One written figure: its file stem, caption for the README and notes on missing data."""

    stem: str
    title: str
    what: str
    caption: str
    available: bool
    notes: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def _palette(column: str, levels: list[str]) -> dict[str, tuple[float, float, float]]:
    index = COLOUR_INDEX.get(column) or {v: i for i, v in enumerate(views.LEVELS.get(column, ()))}
    spare = len(index)
    colours = {}
    for level in levels:
        if level not in index:
            index = {**index, level: spare}
            spare += 1
        colours[label(level)] = PALETTE[index[level] % len(PALETTE)]
    return colours


def _fold_count(data: pd.DataFrame, column: str) -> str:
    counts = data.groupby(column)[["seed", "fold"]].apply(lambda g: len(g.drop_duplicates()))
    lo, hi = int(counts.min()), int(counts.max())
    return f"{hi} folds" if lo == hi else f"{lo}–{hi} folds"


def _zoom_window(data: pd.DataFrame) -> tuple[int, int]:
    last = int(data["epoch"].max())
    span = max(2, round(last * ZOOM_FRACTION))
    return max(last - span, 0), last


def _band_limits(data: pd.DataFrame, column: str, y: str) -> tuple[float, float]:
    stats = data.groupby([column, "epoch"])[y].agg(["mean", "std"]).fillna({"std": 0.0})
    lo = float((stats["mean"] - stats["std"]).min())
    hi = float((stats["mean"] + stats["std"]).max())
    pad = max((hi - lo) * 0.08, 0.002)
    return max(lo - pad, 0.0), min(hi + pad, 1.0)


def _curve_panel(
    ax: Axes,
    data: pd.DataFrame,
    column: str,
    y: str,
    *,
    title: str,
    ylabel: str,
    legend: bool = True,
    zoom: bool = False,
    percent: bool = True,
    levels: list[str] | None = None,
    legend_title: str | None = None,
) -> None:
    """Mean ± 1 sd over folds of ``y`` per epoch, one line per level of ``column`` (in the
    canonical order unless ``levels`` gives it; linear y, from 0 unless zoomed; as a percentage
    when ``percent``)."""
    levels = levels or views.level_order(column, data[column].unique())
    if zoom:
        start, last = _zoom_window(data)
        data = data[data["epoch"] >= start]
    names = {v: label(v) for v in levels}
    if "lr" in data.columns and data["lr"].nunique() > 1:  # e.g. per-optimizer learning rates
        lrs = data.groupby(column)["lr"].unique()
        names = {
            v: f"{label(v)} (lr {lrs[v][0]:g})" if len(lrs[v]) == 1 else label(v) for v in levels
        }
    order = [names[v] for v in levels]
    plot = data.assign(_hue=data[column].map(names))
    sns.lineplot(
        data=plot,
        x="epoch",
        y=y,
        hue="_hue",
        hue_order=order,
        style="_hue",
        style_order=order,
        palette=dict(zip(order, _palette(column, levels).values(), strict=True)),
        errorbar="sd",
        linewidth=1.6,
        ax=ax,
        legend=legend,
    )
    ax.set_title(title)
    ax.set_xlabel("Epoch")
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if percent:
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=None))
    if zoom:
        ax.set_xlim(start, last)
        limits = _band_limits(plot, "_hue", y)
        if all(math.isfinite(v) for v in limits):
            ax.set_ylim(*limits)
    else:
        ax.set_xlim(0, int(data["epoch"].max()))
        ax.set_ylim(bottom=0.0)
    if legend:
        handles, labels = ax.get_legend_handles_labels()
        title = legend_title or COLUMN_TITLES.get(column, column)
        ax.legend(handles, labels, title=title, loc="best")


def _placeholder(title: str, message: str) -> Figure:
    fig = Figure(figsize=(7.0, 2.0), layout="constrained")
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.62, title, ha="center", va="center", fontsize=13, weight="bold")
    ax.text(0.5, 0.3, message, ha="center", va="center", fontsize=11, color="#a0322d")
    return fig


def _suptitle(fig: Figure, title: str, notes: list[str]) -> None:
    width = int(fig.get_figwidth() * 11)  # characters per line at this font size
    text = "\n".join([title, *textwrap.wrap("; ".join(notes), width)])
    fig.suptitle(text, fontsize=12)


def _held_fixed(data: pd.DataFrame, swept: tuple[str, ...]) -> str:
    formats = {"loss": "{} loss", "init": "{} init"}
    parts = []
    for col in views.CONFIG_COLUMNS:
        values = views.level_order(col, data[col].unique())
        if col not in swept and len(values) == 1:
            parts.append(formats.get(col, "{}").format(label(values[0])))
    for col, fmt in (
        ("lr", "lr {:g}"),
        ("batch_size", "batch size {:g}"),
        ("epochs", "{:g} epochs"),
    ):
        values = sorted(data[col].dropna().unique()) if col in data.columns else []
        if len(values) == 1:
            parts.append(fmt.format(values[0]))
    return ", ".join(parts)


def _missing_notes(df: pd.DataFrame, name: str, data: pd.DataFrame) -> list[str]:
    by_reason: dict[str, list[str]] = {}
    for config, reason in views.missing_configs(df, name):
        by_reason.setdefault(reason, []).append(views.describe_config(config))
    notes = [f"{REASONS[reason]}: {'; '.join(names)}" for reason, names in by_reason.items()]
    return notes + views.diverged_notes(data, list(EXPERIMENTS[name].swept))


Drawer = Callable[[pd.DataFrame, pd.DataFrame, list[str]], tuple[Figure, str]]
Entry = tuple[str, str, str, Drawer]
"""A figure of the report: (experiment, file stem, title, drawer)."""


def _draw_fig2(df: pd.DataFrame, data: pd.DataFrame, notes: list[str]) -> tuple[Figure, str]:
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    _curve_panel(ax, data, "activation", "test_error", title="", ylabel="Test error rate")
    ax.set_title(f"Mean ± 1 sd over {_fold_count(data, 'activation')}", fontsize=10)
    _suptitle(fig, "Figure 2: test error per activation function", notes)
    return fig, "Test error rate per epoch for each activation function"


def _draw_zoomed(
    column: str, title: str
) -> Callable[[pd.DataFrame, pd.DataFrame, list[str]], tuple[Figure, str]]:
    def draw(df: pd.DataFrame, data: pd.DataFrame, notes: list[str]) -> tuple[Figure, str]:
        fig = Figure(figsize=(11.0, 4.4), layout="constrained")
        a, b = fig.subplots(1, 2)
        folds = _fold_count(data, column)
        _curve_panel(a, data, column, "test_error", title="(a) All epochs", ylabel="Test error")
        start, last = _zoom_window(data)
        _curve_panel(
            b,
            data,
            column,
            "test_error",
            title=f"(b) Epochs {start}–{last} (zoom)",
            ylabel="Test error",
            legend=False,
            zoom=True,
        )
        _suptitle(fig, f"{title} (mean ± 1 sd over {folds})", notes)
        return fig, "Test error rate per epoch: (a) all epochs, (b) zoomed on the last epochs"

    return draw


def _draw_fig4(df: pd.DataFrame, data: pd.DataFrame, notes: list[str]) -> tuple[Figure, str]:
    fig = Figure(figsize=(11.0, 4.4), layout="constrained")
    a, b = fig.subplots(1, 2)
    folds = _fold_count(data, "loss")
    _curve_panel(a, data, "loss", "test_error", title="(a) Test error", ylabel="Test error")
    _curve_panel(
        b,
        data,
        "loss",
        "train_loss",
        title="(b) Training loss (MSE and BCE: not the same scale)",
        ylabel="Training loss",
        legend=False,
        percent=False,
    )
    _suptitle(fig, f"Figure 4: MSE against BCE loss (mean ± 1 sd over {folds})", notes)
    return fig, (
        "(a) test error rate per epoch and (b) training loss per epoch for MSE and BCE; "
        "the two losses are on different scales, so compare their shapes, not their levels"
    )


def _difference_panel(ax: Axes, diffs: pd.DataFrame) -> None:
    """|custom − torch| train loss per fold and epoch (dots) and its maximum over folds (line),
    log y; exact zeros are drawn on a dotted floor line and counted in the legend."""
    positive = diffs.loc[diffs["abs_diff"] > 0, "abs_diff"]
    exponent = math.floor(math.log10(positive.min())) - 1 if len(positive) else -17
    floor = 10.0**exponent
    top = math.ceil(math.log10(positive.max())) if len(positive) else exponent + 1
    dtypes = views.level_order("dtype", diffs["dtype"].unique())
    palette = _palette("dtype", dtypes)
    order = [label(d) for d in dtypes]
    plot = diffs.assign(shown=diffs["abs_diff"].clip(lower=floor), _hue=diffs["dtype"].map(label))
    sns.scatterplot(
        data=plot,
        x="epoch",
        y="shown",
        hue="_hue",
        hue_order=order,
        palette=palette,
        s=7,
        alpha=0.35,
        linewidth=0,
        legend=False,
        ax=ax,
    )
    worst = plot.groupby(["_hue", "epoch"], as_index=False)["shown"].max()
    sns.lineplot(
        data=worst,
        x="epoch",
        y="shown",
        hue="_hue",
        hue_order=order,
        palette=palette,
        linewidth=1.8,
        legend=False,
        ax=ax,
    )
    ax.set_yscale("log")
    # two decades below the floor for the zeros' count, some above the data for the legend
    ax.set_ylim(floor / 100.0, 10.0 ** (top + max(2, (top - exponent) // 3)))
    ax.set_xlim(0, int(plot["epoch"].max()))
    ax.axhline(floor, color="0.35", linestyle=":", linewidth=1.2)
    handles = [
        Line2D([], [], color=palette[o], linewidth=1.8, label=f"{o}: max over folds") for o in order
    ]
    handles += [
        Line2D(
            [],
            [],
            color=palette[o],
            marker="o",
            markersize=3,
            linestyle="",
            alpha=0.6,
            label=f"{o}: one fold",
        )
        for o in order
    ]
    zero = diffs["abs_diff"] == 0
    zeros = []
    for d in dtypes:
        mine = zero[diffs["dtype"] == d]
        zeros.append(f"{label(d)} {int(mine.sum())}/{len(mine)}")
    zero_label = f"exactly 0, drawn on the dotted line at $10^{{{exponent}}}$: " + ", ".join(zeros)
    ax.text(
        0.99,
        floor / 10.0,
        zero_label,
        transform=ax.get_yaxis_transform(),
        ha="right",
        va="center",
        fontsize=7.5,
        color="0.25",
    )
    ax.legend(handles=handles, loc="upper left", ncol=2, fontsize=7.5, columnspacing=1.0)
    identical = [
        label(d) for d in dtypes if (diffs.loc[diffs["dtype"] == d, "abs_diff"] == 0).all()
    ]
    if identical:
        ax.text(
            0.5,
            0.4,
            f"{' and '.join(identical)}: every difference is exactly 0\n(bit-identical losses)",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=10,
            color="0.2",
            bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.6"},
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("(c) |custom − torch| training loss, per fold")
    ax.set_xlabel("Epoch")
    ax.set_ylabel("|Δ training loss| (log scale)")


def _draw_fig5(df: pd.DataFrame, data: pd.DataFrame, notes: list[str]) -> tuple[Figure, str]:
    fig = Figure(figsize=(15.5, 4.6), layout="constrained")
    a, b, c = fig.subplots(1, 3)
    pin = {"dtype": "float32", "engine": "sequential"}  # Table III's: one model alone
    curves, _ = views.curve_rows(df, "fig5_frameworks", pin=pin)
    dtype = views.level_order("dtype", curves["dtype"].unique())
    which = label(dtype[0]) if dtype else "?"
    folds = _fold_count(curves, "framework")
    _curve_panel(
        a, curves, "framework", "test_error", title=f"(a) All epochs, {which}", ylabel="Test error"
    )
    start, last = _zoom_window(curves)
    _curve_panel(
        b,
        curves,
        "framework",
        "test_error",
        title=f"(b) Epochs {start}–{last} (zoom), {which}",
        ylabel="Test error",
        legend=False,
        zoom=True,
    )
    diffs = views.framework_differences(df)
    engines = set(diffs["engine"])
    if engines:  # one engine's differences: Table III's (sequential) when present
        diffs = diffs[
            diffs["engine"] == ("sequential" if "sequential" in engines else min(engines))
        ]
    if diffs.empty:
        c.axis("off")
        c.text(0.5, 0.5, "(c) not drawn: needs both frameworks", ha="center", color="#a0322d")
    else:
        _difference_panel(c, diffs)
    title = f"Figure 5: custom framework against torch.nn (mean ± 1 sd over {folds})"
    _suptitle(fig, title, notes)
    return fig, (
        f"(a) test error per epoch, (b) zoomed on the last epochs ({which}); "
        "(c) beyond the paper: |custom − torch| of the training loss per fold and epoch "
        "(dots: folds, line: the largest over folds), float32 and float64, from identical initial "
        "weights, data and batch order"
    )


def _draw_fig3_tuned(df: pd.DataFrame, data: pd.DataFrame, notes: list[str]) -> tuple[Figure, str]:
    fig = Figure(figsize=(11.0, 4.4), layout="constrained")
    a, b = fig.subplots(1, 2, sharey=True)
    hand, _ = views.curve_rows(df, "fig3_optimizers")
    if hand.empty:
        a.axis("off")
        a.text(0.5, 0.5, "(a) not drawn: fig3_optimizers not in the results", ha="center")
    else:
        _curve_panel(
            a, hand, "optimizer", "test_error", title="(a) Hand-picked lr (the paper's)",
            ylabel="Test error",
        )  # fmt: skip
    _curve_panel(
        b, data, "optimizer", "test_error", title="(b) lr tuned on the validation split",
        ylabel="Test error",
    )  # fmt: skip
    folds = _fold_count(data, "optimizer")
    _suptitle(fig, f"Figure 3, hand-picked against tuned learning rates (mean ± 1 sd over {folds})",
              notes)  # fmt: skip
    return fig, (
        "Test error per epoch for each optimizer: (a) at the paper's hand-picked learning rates "
        "(trained on all 1000 training points), (b) at the learning rate each optimizer's "
        "validation error chose from the same 16-value log grid (trained on 800 points, 200 "
        "held out); the band is ±1 sd over folds"
    )


def _draw_lr_sensitivity(
    df: pd.DataFrame, data: pd.DataFrame, notes: list[str]
) -> tuple[Figure, str]:
    rows = views.experiment_rows(df, "fig3_tuned", grid=True)
    curves = rows[rows["fold"].notna() & rows["epoch"].notna()]
    final = views.final_rows(curves, ["optimizer", "lr"])
    choices = views.lr_choices(rows).dropna(subset=["chosen_lr"])
    levels = views.level_order("optimizer", final["optimizer"].unique())
    palette = _palette("optimizer", levels)
    plot = final.assign(_hue=final["optimizer"].map(label))
    order = [label(v) for v in levels]
    fig = Figure(figsize=(12.4, 4.8), layout="constrained")
    a, b = fig.subplots(1, 2, sharex=True)
    sns.lineplot(
        data=plot,
        x="lr",
        y="val_error",
        hue="_hue",
        hue_order=order,
        style="_hue",
        style_order=order,
        palette=palette,
        markers=True,
        dashes=False,
        errorbar=("ci", 95),
        n_boot=2000,
        seed=0,
        ax=a,
    )
    a.set_xscale("log")
    a.set_ylim(bottom=0.0)
    a.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=None))
    a.set_xlabel("Learning rate (log scale)")
    a.set_ylabel("Final validation error")
    a.set_title("(a) Validation error over the grid")
    a.legend(title=COLUMN_TITLES["optimizer"], loc="upper left")
    # how often each rate of the grid won, zeros included: the distribution of the choices
    grid = pd.MultiIndex.from_product([levels, sorted(final["lr"].unique())], names=["o", "lr"])
    wins = choices.groupby(["optimizer", "chosen_lr"]).size().reindex(grid, fill_value=0)
    wins = (wins / wins.groupby(level="o").transform("sum")).rename("share").reset_index()
    sns.lineplot(
        data=wins.assign(_hue=wins["o"].map(label)),
        x="lr", y="share", hue="_hue", hue_order=order, style="_hue", style_order=order,
        palette=palette, markers=True, dashes=False, legend=False, ax=b,
    )  # fmt: skip
    b.set_ylim(0.0, 1.02)
    b.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=None))
    b.set_xlabel("Learning rate chosen (log scale)")
    b.set_ylabel("Share of replicates choosing it")
    b.set_title("(b) Each replicate's own choice")
    folds = _fold_count(final, "optimizer")
    _suptitle(fig, f"Learning-rate sensitivity and per-replicate tuning ({folds})", notes)
    excluded = choices.groupby("optimizer")["n_excluded"].sum()
    gaps = "; ".join(f"{label(o)} {int(n)}" for o, n in excluded.items() if n)
    return fig, (
        "(a) Final validation error against the learning rate, per optimizer: the line is the "
        "mean over replicates, the band its 95% bootstrap confidence interval; (b) the share of "
        "replicates that chose each rate, each on its own validation split (the lowest final "
        "validation error among the rates at which it did not diverge): the tuning is inside "
        "each replicate, so its variance is inside every interval of the tuned comparison"
        + (f"; (replicate, rate) pairs left out because they diverged: {gaps}" if gaps else "")
    )


def _draw_variance(df: pd.DataFrame, data: pd.DataFrame, notes: list[str]) -> tuple[Figure, str]:
    table = variance.variance_table(df)
    runs, set_aside = variance.crossed_runs(df)
    notes = notes + set_aside
    fig = Figure(figsize=(12.0, 5.0), layout="constrained")
    a, b = fig.subplots(1, 2, width_ratios=[1.25, 1.0])
    levels = int(runs["levels"].max()) if len(runs) else 0
    if len(runs):
        inits = list(range(int(runs["init_draw"].max()) + 1))
        palette = dict(zip(inits, sns.color_palette("colorblind", len(inits)), strict=True))
        sns.swarmplot(  # deterministic (a strip plot's jitter is random); one column per init
            data=runs, x="data_draw", y="test_error", hue="init_draw", hue_order=inits,
            palette=palette, dodge=True, size=3.2, ax=a,
        )  # fmt: skip
        means = runs.groupby("data_draw")["test_error"].mean()
        a.hlines(means.to_numpy(), means.index - 0.45, means.index + 0.45, colors="black",
                 linewidth=1.2, label="mean of the data draw")  # fmt: skip
        a.legend(title="Init draw", ncols=len(inits) + 1, fontsize=8, title_fontsize=9,
                 loc="upper center", columnspacing=0.8, handletextpad=0.2)  # fmt: skip
        a.set_ylim(0.0, float(runs["test_error"].max()) * 1.2)
    a.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=None))
    a.set_xlabel("Data draw (a column of dots per init draw, a dot per shuffle draw)")
    a.set_ylabel("Final test error")
    a.set_title("(a) Final test error of every run")
    if table.empty:
        b.axis("off")
        b.text(0.5, 0.5, textwrap.fill(f"Not decomposed: {table.attrs.get('note', '')}", 40),
               ha="center", va="center", color="#a0322d")  # fmt: skip
        b.set_title("(b) Each component's share, 95% interval")
    else:
        shown = table.iloc[::-1]  # the streams at the top
        y = np.arange(len(shown))
        share = shown["share"].to_numpy() * 100
        errors = [share - shown["share_ci_low"] * 100, shown["share_ci_high"] * 100 - share]
        colours = [PALETTE[i] for i in (0, 1, 2)] + ["0.55"] * 3 + ["0.3"]
        b.barh(y, share, color=colours[::-1], xerr=errors, capsize=4)
        for row, (value, high) in enumerate(zip(share, shown["share_ci_high"] * 100, strict=True)):
            low = shown["share_ci_low"].iloc[row] * 100
            b.text(high + 1.5, row, f"{value:.1f}% [{low:.1f}, {high:.1f}]", va="center",
                   fontsize=9)  # fmt: skip
        b.set_yticks(y, shown["component"].map(variance.LABELS).str.replace(" (", "\n("))
        b.set_xlim(0, 135)
        b.set_xticks(range(0, 101, 20))
        b.xaxis.set_major_formatter(PercentFormatter(xmax=100, decimals=0))
        total = table.attrs["total"]
        b.set_xlabel("Share of the variance of one run (sum: 100%)")
        b.set_title(
            "(b) Each component's share, 95% interval\n(variance of one run "
            f"{total['variance'] * 1e4:.2f} ×10⁻⁴: sd {np.sqrt(total['variance']) * 100:.2f} pp)"
        )
    design = f"{levels}×{levels}×{levels} crossed draws, {len(runs)} runs" if levels else "no runs"
    _suptitle(fig, f"Where the spread comes from: data × init × shuffle ({design})", notes)
    return fig, (
        "The Table III configuration trained on every combination of L draws of the data "
        "points, L of the initial weights and L of the mini-batch order (L³ runs): (a) the final "
        "test error of every run, by data draw (black: its mean), coloured by init draw; (b) the "
        "share of each variance component (three-way random-effects ANOVA, method of moments, "
        "negative estimates truncated at 0) in the variance of one run, with its 95% "
        "generalized confidence interval; the three-way interaction is the residual"
    )


def _draw_fig6(df: pd.DataFrame, data: pd.DataFrame, notes: list[str]) -> tuple[Figure, str]:
    if "sequential" in set(data["engine"]):  # Table IV's: one model alone
        data = data[data["engine"] == "sequential"]
    models = views.level_order("model", data["model"].unique())
    fig = Figure(figsize=(5.5 * len(models), 4.4), layout="constrained")
    axes = fig.subplots(1, len(models), sharey=True, squeeze=False)[0]
    for index, (ax, model) in enumerate(zip(axes, models, strict=True)):
        _curve_panel(
            ax,
            data[data["model"] == model],
            "framework",
            "test_error",
            title=f"({'abcd'[index]}) {label(model)}",
            ylabel="Test error",
            legend=index == 0,
        )
    folds = _fold_count(data, "framework")
    _suptitle(fig, f"Figure 6: digits, custom framework against torch.nn (mean ± 1 sd over "
              f"{folds})", notes)  # fmt: skip
    return fig, (
        "Beyond the paper (its future work): test error per epoch on scikit-learn's 8×8 "
        "handwritten digits (10 classes), for an MLP and a CNN (Conv-BatchNorm-ReLU-MaxPool "
        "twice, then Linear), each trained by the custom framework and by its torch.nn twin "
        "from the same initial weights, data split and batch order"
    )


def _draw_experiment(name: str) -> Drawer:
    """The figure of an experiment with no drawer of its own (a new file in conf/experiment):
    test error per epoch of every configuration it sweeps, one panel per framework when its
    jobs train both."""
    swept = EXPERIMENTS[name].swept
    compared = [c for c in swept if c != "framework"] or ["framework"]
    by_framework = "framework" in swept and compared != ["framework"]

    def draw(df: pd.DataFrame, data: pd.DataFrame, notes: list[str]) -> tuple[Figure, str]:
        def rank(row: tuple[str, ...]) -> tuple[int, ...]:
            orders = [views.level_order(c, data[c].unique()) for c in compared]
            return tuple(order.index(v) for order, v in zip(orders, row, strict=True))

        settings = sorted({tuple(r) for r in data[compared].itertuples(index=False)}, key=rank)
        names = {setting: ", ".join(label(v) for v in setting) for setting in settings}
        keyed = [names[tuple(r)] for r in data[compared].itertuples(index=False)]
        data = data.assign(_setting=keyed)
        panels = views.level_order("framework", data["framework"].unique()) if by_framework else []
        fig = Figure(figsize=(5.5 * max(1, len(panels)) + 1.0, 4.4), layout="constrained")
        axes = fig.subplots(1, max(1, len(panels)), sharey=True, squeeze=False)[0]
        title = " × ".join(COLUMN_TITLES.get(c, c) for c in compared)
        for index, ax in enumerate(axes):
            shown = data[data["framework"] == panels[index]] if panels else data
            _curve_panel(
                ax, shown, "_setting", "test_error", ylabel="Test error", legend=index == 0,
                title=f"({'abcdefgh'[index]}) {label(panels[index])}" if panels else "",
                levels=[names[s] for s in settings], legend_title=title,
            )  # fmt: skip
        folds = _fold_count(data, "_setting")
        _suptitle(fig, f"{EXPERIMENTS[name].figure}: test error per {title.lower()} "
                  f"(mean ± 1 sd over {folds})", notes)  # fmt: skip
        frameworks = " and ".join(label(p) for p in panels)
        return fig, (
            f"{EXPERIMENTS[name].what}: test error per epoch for each {title.lower()}"
            + (f", trained by the {frameworks} from the same initial weights, data and batch "
               "order" if panels else "")
        )  # fmt: skip

    return draw


_DRAWN: tuple[Entry, ...] = (
    ("fig2_activations", "fig2_activations", "Figure 2", _draw_fig2),
    (
        "fig3_optimizers",
        "fig3_optimizers",
        "Figure 3",
        _draw_zoomed("optimizer", "Figure 3: test error per optimizer"),
    ),
    ("fig3_tuned", "fig3_tuned", "Figure 3, tuned", _draw_fig3_tuned),
    ("fig3_tuned", "fig_lr_sensitivity", "Learning-rate sensitivity", _draw_lr_sensitivity),
    ("fig4_losses", "fig4_losses", "Figure 4", _draw_fig4),
    ("fig5_frameworks", "fig5_frameworks", "Figure 5", _draw_fig5),
    (
        "initializers",
        "fig_initializers",
        "Initializer figure",
        _draw_zoomed("init", "Weight initializers (not shown in the paper): test error per epoch"),
    ),
    ("variance_sources", "fig_variance", "Variance figure", _draw_variance),
    ("digits", "fig6_digits", "Figure 6", _draw_fig6),
)
FIGURES: tuple[Entry, ...] = _DRAWN + tuple(
    (name, f"fig_{name}", experiment.figure, _draw_experiment(name))
    for name, experiment in EXPERIMENTS.items()
    if name not in {drawn[0] for drawn in _DRAWN}
)
"""(experiment, file stem, title, drawer) for every figure of the report: the paper's, drawn
each its own way, then one for every other experiment of conf/experiment."""


def _save(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    png, svg = out_dir / f"{stem}.png", out_dir / f"{stem}.svg"
    with atomic.atomic_path(png) as temp:  # a failed write keeps the previous figure whole
        fig.savefig(temp, format="png", dpi=PNG_DPI, metadata=PNG_METADATA)
    fig.set_layout_engine("none")  # keep the layout just computed: the SVG needs no second pass
    with atomic.atomic_path(svg) as temp:
        fig.savefig(temp, format="svg", metadata=SVG_METADATA)
    return [png, svg]


def build_figure(df: pd.DataFrame, entry: Entry, out_dir: Path) -> FigureResult:
    """Draw and write one figure (PNG + SVG) of a prepared results frame (`views.prepare`)."""
    experiment, stem, title, draw = entry
    data, pinned = views.curve_rows(df, experiment)
    what = EXPERIMENTS[experiment].what
    with matplotlib.rc_context(RC):
        if data.empty:
            message = f"no results for experiment '{experiment}'"
            fig = _placeholder(f"{title}: not drawn", message)
            result = FigureResult(stem, title, what, message, available=False, notes=[message])
        else:
            notes = _missing_notes(df, experiment, data) + pinned
            fig, caption = draw(df, data, notes)
            held = _held_fixed(data, EXPERIMENTS[experiment].swept)
            caption = f"{caption}. Held fixed: {held}." if held else f"{caption}."
            result = FigureResult(stem, title, what, caption, available=True, notes=notes)
        result.files = _save(fig, out_dir, stem)
    return result


def build_figures(df: pd.DataFrame, out_dir: Path, workers: int = 1) -> list[FigureResult]:
    """Draw and write every figure of the report into ``out_dir`` (in ``workers`` processes)."""
    with drawing(df, out_dir, FIGURES, workers) as drawn:
        return drawn()


@contextmanager
def drawing(
    df: pd.DataFrame, out_dir: Path, entries: Sequence[Entry] = FIGURES, workers: int = 1
) -> Iterator[Callable[[], list[FigureResult]]]:
    """Draw and write the figures of ``entries`` while the caller goes on with other work:
    yields the function that waits for them and returns their results, in order.

    With ``workers`` > 1 they are drawn in that many worker processes (a figure's time is
    matplotlib's and seaborn's, on one core), each holding the table (`bench.processes.pool`).
    A worker draws exactly what this process would: the same code, table and rc settings, so
    the same bytes (a test compares them). With one worker they are drawn here, when the
    function is called.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    if workers <= 1 or len(entries) <= 1:
        yield lambda: [build_figure(df, entry, out_dir) for entry in entries]
        return
    pool = processes.pool(min(workers, len(entries)), _receive, (df,))
    try:
        with processes.forking():
            pending = [pool.submit(_build_received, entry[1], out_dir) for entry in entries]
        yield lambda: [job.result() for job in pending]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # on an error, no figure left to draw


_RECEIVED: list[pd.DataFrame] = []
"""In a worker process of `drawing`: the table it draws from (`_receive`)."""


def _receive(df: pd.DataFrame) -> None:
    _RECEIVED[:] = [df]


def _build_received(stem: str, out_dir: Path) -> FigureResult:
    entry = next(entry for entry in FIGURES if entry[1] == stem)
    return build_figure(_RECEIVED[0], entry, out_dir)


__all__ = ["FIGURES", "FigureResult", "build_figure", "build_figures", "drawing"]
