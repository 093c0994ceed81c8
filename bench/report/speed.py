"""The speed benchmark's JSON as a table and a figure: custom / torch.nn time ratios.

    python -m bench.report.speed .benchmarks/benchmarks.json --out reports/benchmarks

reads what ``make bench`` (pytest-benchmark over tests/benchmarks) wrote, pairs the two
frameworks of each benchmark group and writes into ``--out``:

- ``summary.md``: one row per group (median times; their ratio, block by block over the
  interleaved blocks, with its IQR; the ratio of the medians and of the fastest rounds; the
  target and whether it is met), then the harness's own timer
  for the whole-run groups, and how it was measured (threads, torch, CPU). It is included
  verbatim in reports/README.md, so it starts at heading level 3 and explains itself.
- ``summary.csv``: the same numbers, unrounded, in seconds.
- ``ratio.png`` / ``ratio.svg``: the ratio against hidden width (one line per batch size) and
  against batch size (one line per width), with lines at 1 (equal time) and at the 0.5 target.

and, from tests/benchmarks/test_stacked.py, M models trained at once:

- in ``summary.md``, the per-model step time of the stacked framework, torch.func, the
  framework one model after another and torch.nn one model after another, for M = 1 … 1000,
  with the ratios, their targets and whether they are met; where the run timed JAX (the
  optional ``jax`` extra), the outside peer's per-model time and stacked / JAX; then the
  achieved GFLOP/s of each against the machine's single-thread matrix-product peak measured in
  the same run;
- in ``summary.csv``, those rows too (``section`` = ``stacked``);
- ``stacked.png`` / ``stacked.svg``: per-model step time against M (log-log, SGD and Adam) and
  GFLOP/s against M under the peak (the roofline).

The output depends only on the JSON: same JSON, byte-identical files.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from bench import atomic
from bench.report.figures import PALETTE, PNG_DPI, PNG_METADATA, RC, SVG_METADATA

matplotlib.use("Agg")

FRAMEWORKS = ("custom", "torch")
RATIO_TARGET = 0.5  # our target where overhead dominates (Table III shapes)
SAME_KERNELS_TARGET = 1.05  # where arithmetic dominates: both run the same BLAS kernels
SCALE = re.compile(r"^scale-(?:(?P<optimizer>[a-z_]+)-)?w(?P<width>\d+)-b(?P<batch>\d+)$")
STACK = re.compile(r"^stack-(?:(?P<model>cnn)-)?(?P<optimizer>[a-z_]+)-m(?P<models>\d+)$")
SEQUENTIAL = re.compile(
    r"^sequential-(?P<optimizer>[a-z]+)-(?P<loss>[a-z]+)-(?P<zero>[a-z]+)_zero_grad$"
)
KINDS = {
    "run": "whole training run (`bench.harness.training.train`, 100 epochs)",
    "step": "one training step",
    "cnn": "one training step of the digits CNN (Figure 6)",
    "scale": "one training step",
    "sequential": "one training step, framework API directly (no dL/dx)",
}
CNN_TARGET = 1.0
"""The digits CNN's step: convolutions are arithmetic, so the aim is parity with torch.nn."""
STACK_VS_FUNC = (100, 0.5)
"""At M = 100 the stacked framework takes at most half of torch.func's time per model."""
STACK_VS_SEQUENTIAL = (10, 0.6)
# The digits CNN's targets (M, ratio): stacked / torch.func and stacked / sequential custom.
CNN_STACK_VS_FUNC = (10, 0.5)
CNN_STACK_VS_SEQUENTIAL = (10, 0.5)
"""At M = 10 stacking takes at most 0.6 of the time of the same models one after another."""
CONTENDERS = ("stacked", "torch.func", "sequential custom", "sequential torch.nn", "JAX")
RATIO_METHOD = (
    "The ratio is the median over *paired blocks*: each block of one contender's steps "
    "against the other's block run just before it (~20 ms each; in the whole-run groups, "
    "one run each), from both benchmarks of the "
    "group, so that the machine's drift over seconds, which moves the two benchmarks' own "
    "medians apart, cancels out; the range is the interquartile range of those block ratios. "
    "*of medians* divides the two benchmarks' medians (timed a few seconds apart), *min ratio* "
    "their fastest rounds. (A JSON written before the blocks were kept gives the ratio of the "
    "medians, with a range pairing opposite quartiles.)"
)


def target(group: str) -> float | None:
    """Our bound on custom / torch for ``group`` (None: measured, no target)."""
    if group.startswith(("run-", "step-", "sequential-")):
        return RATIO_TARGET
    if group == "cnn-step":
        return CNN_TARGET
    match = SCALE.match(group)
    if match and (match["width"], match["batch"]) == ("1024", "1000"):
        return SAME_KERNELS_TARGET
    return None


def group_order(group: str) -> tuple:
    """run-*, step-*, then the scaling grid by optimizer, width, batch."""
    match = SCALE.match(group)
    if match:
        return (2, match["optimizer"] or "", int(match["width"]), int(match["batch"]))
    kind, _, optimizer = group.partition("-")
    rank = {"run": 0, "step": 1, "sequential": 1.5}.get(kind, 3)
    return (rank, not optimizer.startswith("sgd"), optimizer, 0)


@dataclass
class Pair:
    """One group: the custom and torch benchmark entries of the JSON."""

    group: str
    custom: dict[str, Any]
    torch: dict[str, Any]

    def info(self, key: str) -> Any:
        return self.custom["extra_info"].get(key, self.torch["extra_info"].get(key))

    def row(self) -> dict[str, Any]:
        c, t = self.custom["stats"], self.torch["stats"]
        bound = target(self.group)
        ratio, low, high, blocks = ratio_with_range(self.custom, self.torch)
        match = SCALE.match(self.group)
        return {
            "group": self.group,
            "kind": "scale" if match else self.group.partition("-")[0],
            "layers": self.info("layers"),
            "hidden_width": self.info("hidden_width"),
            "batch_size": self.info("batch_size"),
            "optimizer": self.info("optimizer"),
            "loss": self.info("loss"),
            "dtype": self.info("dtype"),
            "custom_median_s": c["median"],
            "torch_median_s": t["median"],
            "custom_iqr_s": c["iqr"],
            "torch_iqr_s": t["iqr"],
            "custom_rounds": c["rounds"],
            "torch_rounds": t["rounds"],
            "ratio": ratio,
            "ratio_low": low,
            "ratio_high": high,
            "paired_blocks": blocks,
            "ratio_of_medians": c["median"] / t["median"],
            "ratio_min": c["min"] / t["min"],
            "target": bound,
            "met": None if bound is None else bool(ratio <= bound),
            "custom_harness_s": _median(self.custom["extra_info"].get("harness_train_seconds")),
            "torch_harness_s": _median(self.torch["extra_info"].get("harness_train_seconds")),
        }


def paired_ratios(custom: dict[str, Any], torch: dict[str, Any]) -> list[float]:
    """custom / torch, block by block: every block of ``custom``'s benchmark over the torch
    block just before it, and every torch block of ``torch``'s benchmark under the custom block
    just before it (``extra_info["paired"]``: ``[own median step, other's median step]`` per
    block, kept by the benchmarks' ``interleaved`` fixture). Each ratio compares two blocks run
    within ~40 ms of each other, so the machine's drift over seconds cancels out of it."""
    ratios = [own / other for own, other in custom["extra_info"].get("paired", ())]
    return ratios + _others_over_own(torch)


def _others_over_own(bench: dict[str, Any]) -> list[float]:
    """The other contender's block over ``bench``'s own, for each of its paired blocks."""
    return [other / own for own, other in bench["extra_info"].get("paired", ())]


def _median_and_quartiles(ratios: list[float]) -> tuple[float, float, float, int]:
    """``(median, q1, q3, count)`` of block ratios."""
    series = pd.Series(ratios)
    return series.median(), series.quantile(0.25), series.quantile(0.75), len(ratios)


def ratio_with_range(
    custom: dict[str, Any], torch: dict[str, Any]
) -> tuple[float, float, float, int]:
    """``(ratio, low, high, blocks)`` of custom / torch: the median of the `paired_ratios` and
    their quartiles; for a JSON without paired blocks (``blocks`` = 0), the ratio of the two
    medians and the conservative band of opposite quartiles (custom q1 / torch q3, custom q3 /
    torch q1)."""
    ratios = paired_ratios(custom, torch)
    if not ratios:
        c, t = custom["stats"], torch["stats"]
        return c["median"] / t["median"], c["q1"] / t["q3"], c["q3"] / t["q1"], 0
    return _median_and_quartiles(ratios)


def _median(values: list[float] | None) -> float | None:
    return statistics.median(values) if values else None


def pairs(report: dict[str, Any]) -> list[Pair]:
    """Every group holding both frameworks, in reading order (a group missing one is skipped)."""
    groups: dict[str, dict[str, dict[str, Any]]] = {}
    for bench in report["benchmarks"]:
        framework = bench["extra_info"].get("framework") or bench["params"].get("framework")
        if bench.get("stats") and framework in FRAMEWORKS:
            groups.setdefault(bench["group"], {})[framework] = bench
    found = [
        Pair(group, entries["custom"], entries["torch"])
        for group, entries in groups.items()
        if set(entries) == set(FRAMEWORKS) and not STACK.match(group)  # stacked: own section
    ]
    return sorted(found, key=lambda pair: group_order(pair.group))


def table(report: dict[str, Any]) -> pd.DataFrame:
    """One row per group (see ``Pair.row``)."""
    rows = [pair.row() for pair in pairs(report)]
    if not rows:
        raise ValueError("no benchmark group holds both a custom and a torch result")
    return pd.DataFrame(rows)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.4g}"


def _machine(report: dict[str, Any], frame: pd.DataFrame, pairs_: list[Pair]) -> str:
    machine = report.get("machine_info", {})
    cpu = machine.get("cpu", {})
    brand = cpu.get("brand_raw") or machine.get("processor") or "unknown CPU"
    cores = cpu.get("count")
    threads = sorted({p.info("threads") for p in pairs_} - {None})
    versions = sorted({p.info("torch") for p in pairs_} - {None})
    timers = sorted({b.get("options", {}).get("timer") for b in report["benchmarks"]} - {None})
    clocks = {"perf_counter": "wall clock", "process_time": "this process's CPU time"}
    timer = ", ".join(f"{t} ({clocks.get(t.rpartition('.')[2], 'timer')})" for t in timers)
    return (
        f"{len(frame)} groups measured {report.get('datetime', '')[:10]} on {brand}"
        + (f" ({cores} logical cores)" if cores else "")
        + f", torch.set_num_threads({', '.join(map(str, threads)) or '?'})"
        + f", torch {', '.join(versions) or '?'}"
        + f", Python {machine.get('python_version', '?')}, pytest-benchmark {report['version']}"
        + (f", timer {timer}" if timer else "")
    )


def markdown(report: dict[str, Any], frame: pd.DataFrame) -> str:
    """summary.md: self-explanatory, for inclusion under a level-2 heading."""
    found = pairs(report)
    lines = [
        "### Custom framework / torch.nn: time ratios",
        "",
        "Measured by `make bench`: pytest-benchmark runs `tests/benchmarks/` with "
        "both frameworks side by side in one session (each group times the same work in each), "
        "then `python -m bench.report.speed` writes this table. The two frameworks of a group "
        "are timed interleaved (blocks of ~20 ms of one's steps alternate with as many of the "
        "other's; whole runs alternate), so both sample the same moments of a shared machine. "
        "A ratio below 1 means the custom framework is faster. "
        + RATIO_METHOD
        + " All groups use the Table III model family (2 inputs, 3 hidden "
        "ReLU layers, sigmoid output, MSE unless the group says BCE, float32) on the sweep's "
        "data. The *sequential* groups call the framework directly (`tests/benchmarks/"
        "test_stacked.py`: no harness adapter, no dL/dx, as torch computes none for an input "
        "without grad), zero_grad through the optimizer or through the model.",
        "",
        f"Machine: {_machine(report, frame, found)}.",
        "",
        "| group | what | layers | batch | optimizer | custom median (ms) | "
        "torch median (ms) | ratio | range (IQR) | of medians | min ratio | target | met |",
        "|---|---|---|--:|---|--:|--:|--:|--:|--:|--:|--:|:-:|",
    ]
    for row in frame.itertuples():
        bound = "—" if row.target is None or pd.isna(row.target) else f"≤ {row.target:g}"
        met = "—" if row.met is None or pd.isna(row.met) else ("yes" if row.met else "**no**")
        lines.append(
            f"| {row.group} | {KINDS.get(row.kind, row.kind)} | {row.layers} | {row.batch_size} "
            f"| {row.optimizer} | {_ms(row.custom_median_s)} | {_ms(row.torch_median_s)} "
            f"| {row.ratio:.3f} | {row.ratio_low:.3f}–{row.ratio_high:.3f} "
            f"| {row.ratio_of_medians:.3f} | {row.ratio_min:.3f} | {bound} | {met} |"
        )
    runs = frame.dropna(subset=["custom_harness_s", "torch_harness_s"])
    if len(runs):
        lines += [
            "",
            "The *run* groups time the whole `bench.harness.training.train` call, per-epoch "
            "evaluation included. The harness's own timer, which the sweep reports as "
            "`train_seconds` (training steps only, after the same warm-up: the timing rule of "
            "the top-level README), gave in the same rounds:",
            "",
            "| group | custom (s, median) | torch (s, median) | ratio |",
            "|---|--:|--:|--:|",
        ]
        for row in runs.itertuples():
            lines.append(
                f"| {row.group} | {row.custom_harness_s:.4g} | {row.torch_harness_s:.4g} "
                f"| {row.custom_harness_s / row.torch_harness_s:.3f} |"
            )
    scale = frame[frame["group"].str.match(r"^scale-w\d+-b\d+$")]
    if len(scale):
        lines += [
            "",
            "The *scale* groups (one SGD step at hidden width W and batch size B) show where the "
            "framework's advantage ends: it saves Python and autograd overhead per operation, "
            "which matters while the tensors are small; once matrix products dominate, both "
            "run the same BLAS kernels and the ratio goes to 1. `ratio.png` (next to this "
            "file) plots these ratios, the error bars being the IQR range.",
        ]
    lines += ["", "Regenerate: `make bench` (about 3–5 minutes on 2 cores)."]
    return "\n".join(lines) + "\n"


def figure(frame: pd.DataFrame) -> Figure:
    """Ratio against width (one line per batch) and against batch (one line per width)."""
    scale = frame[frame["group"].str.match(r"^scale-w\d+-b\d+$")].copy()
    scale["width"] = scale["hidden_width"].astype(int)
    scale["batch"] = scale["batch_size"].astype(int)
    with sns.axes_style(RC), sns.plotting_context(rc=RC), matplotlib.rc_context(RC):
        fig = Figure(figsize=(10, 5.2), layout="constrained")
        axes = fig.subplots(1, 2, sharey=True)
        panels = (("width", "batch", "hidden width"), ("batch", "width", "batch size"))
        for ax, (x, hue, xlabel) in zip(axes, panels, strict=True):
            levels = sorted(scale[hue].unique())
            for index, level in enumerate(levels):
                rows = scale[scale[hue] == level].sort_values(x)
                colour = PALETTE[index % len(PALETTE)]
                ax.errorbar(
                    rows[x],
                    rows["ratio"],
                    yerr=[rows["ratio"] - rows["ratio_low"], rows["ratio_high"] - rows["ratio"]],
                    color=colour,
                    marker="o",
                    capsize=3,
                    label=f"{hue} {level}",
                )
            ax.axhline(1.0, color="0.3", linewidth=1, label="equal time")
            ax.axhline(
                RATIO_TARGET,
                color="0.3",
                linewidth=1,
                linestyle="--",
                label=f"target {RATIO_TARGET:g} (width 25, batch 100)",
            )
            ax.set_xscale("log")
            ax.set_xticks(sorted(scale[x].unique()))
            ax.set_xticklabels([str(v) for v in sorted(scale[x].unique())])
            ax.minorticks_off()
            ax.set_xlabel(xlabel)
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
        axes[0].set_ylabel("time custom / time torch.nn")
        axes[0].set_ylim(bottom=0)
        fig.suptitle("One SGD training step, 2-W-W-W-1 MLP, 1 thread: custom / torch.nn")
    return fig


# -- stacked models -------------------------------------------------------------------------------
def _entries(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """``{(group, contender): benchmark}`` for every timed benchmark that names its contender."""
    found = {}
    for bench in report["benchmarks"]:
        contender = bench["extra_info"].get("contender")
        if bench.get("stats") and contender:
            found[bench["group"], contender] = bench
    return found


def peak_gflops(report: dict[str, Any]) -> float | None:
    """The single-thread float32 matrix-product rate measured in the run (median round)."""
    bench = _entries(report).get(("peak", "torch.mm"))
    if bench is None:
        return None
    return bench["extra_info"]["flops"] / bench["stats"]["median"] / 1e9


def _per_model(bench: dict[str, Any], key: str) -> float:
    return bench["stats"][key] / bench["extra_info"]["models"]


def stacked_table(report: dict[str, Any]) -> pd.DataFrame | None:
    """One row per optimizer and M: per-model step times (seconds) of the four contenders,
    the ratios, targets, GFLOP/s; None when the run has no stacked groups."""
    entries = _entries(report)
    peak = peak_gflops(report)
    rows = []
    for group, contender in sorted(entries, key=lambda key: key[0]):
        match = STACK.match(group)
        if not match or contender != "stacked" or (group, "func") not in entries:
            continue
        ours, func = entries[group, "stacked"], entries[group, "func"]
        optimizer, models = match["optimizer"], int(match["models"])
        sequential = f"sequential-{optimizer}-mse-optimizer_zero_grad"
        custom = entries.get((sequential, "sequential custom"))
        torch_nn = entries.get((sequential, "sequential torch"))
        info = ours["extra_info"]
        flops = info["flops_per_model_step"]
        model = match["model"] or "mlp"
        row = {
            "section": "stacked",
            "group": group,
            "model": model,
            "optimizer": optimizer,
            "models": models,
            "layers": info.get("layers"),
            "batch_size": info.get("batch_size"),
            "loss": info.get("loss"),
            "dtype": info.get("dtype"),
            "stacked_s": _per_model(ours, "median"),
            "func_s": _per_model(func, "median"),
            "stacked_q1_s": _per_model(ours, "q1"),
            "stacked_q3_s": _per_model(ours, "q3"),
            "func_q1_s": _per_model(func, "q1"),
            "func_q3_s": _per_model(func, "q3"),
            "stacked_rounds": ours["stats"]["rounds"],
            "func_rounds": func["stats"]["rounds"],
            "sequential_custom_s": None if custom is None else _per_model(custom, "median"),
            "sequential_torch_s": None if torch_nn is None else _per_model(torch_nn, "median"),
            "flops_per_model_step": flops,
            "peak_gflops": peak,
        }
        ratio, low, high, blocks = ratio_with_range(ours, func)
        row["ratio_func"], row["ratio_func_low"], row["ratio_func_high"] = ratio, low, high
        row["paired_blocks"] = blocks
        row["ratio_func_of_medians"] = row["stacked_s"] / row["func_s"]
        row["ratio_func_min"] = ours["stats"]["min"] / func["stats"]["min"]
        ratio, low, high, blocks = against_peer(ours, entries.get((group, "sequential")), custom)
        row["ratio_sequential"], row["ratio_sequential_low"] = ratio, low
        row["ratio_sequential_high"], row["sequential_paired_blocks"] = high, blocks
        row.update(_against_jax(ours, entries.get((group, "jax"))))
        for name in CONTENDERS:
            seconds = row[_seconds_column(name)]
            row[f"gflops_{_seconds_column(name)[:-2]}"] = (
                None if seconds is None else flops / seconds / 1e9
            )
        vs_func, vs_sequential = (
            (CNN_STACK_VS_FUNC, CNN_STACK_VS_SEQUENTIAL)
            if model == "cnn"
            else (STACK_VS_FUNC, STACK_VS_SEQUENTIAL)
        )
        target_func = vs_func[1] if models == vs_func[0] else None
        target_sequential = vs_sequential[1] if models == vs_sequential[0] else None
        row["target_func"] = target_func
        row["met_func"] = None if target_func is None else bool(row["ratio_func"] <= target_func)
        row["target_sequential"] = target_sequential
        row["met_sequential"] = (
            None
            if target_sequential is None or row["ratio_sequential"] is None
            else bool(row["ratio_sequential"] <= target_sequential)
        )
        rows.append(row)
    if not rows:
        return None
    frame = pd.DataFrame(rows)
    order = ["model", "optimizer", "models"]
    return frame.sort_values(order, key=_optimizer_key).reset_index(drop=True)


def against_peer(
    stacked: dict[str, Any], peer: dict[str, Any] | None, alone: dict[str, Any] | None
) -> tuple[float | None, float | None, float | None, int]:
    """``(ratio, low, high, blocks)`` of stacked / a peer, per model: block by block over
    ``peer``'s paired blocks (timed interleaved with the stacked step: each of its blocks
    against the stacked block just before it; median and quartiles), where the group has that
    benchmark and it kept blocks; else the stacked median per model over ``alone``'s (``blocks``
    = 0, no range: the one model alone for the sequential custom peer, e.g. at M = 1000, or an
    older JSON); all None without either."""
    ratios = [] if peer is None else _others_over_own(peer)
    if ratios:
        return _median_and_quartiles(ratios)
    if alone is None:
        return None, None, None, 0
    return _per_model(stacked, "median") / _per_model(alone, "median"), None, None, 0


JAX_COLUMNS = (
    *("jax_s", "jax_q1_s", "jax_q3_s", "jax_version"),
    *("ratio_jax", "ratio_jax_low", "ratio_jax_high"),
)


def _against_jax(stacked: dict[str, Any], jax: dict[str, Any] | None) -> dict[str, Any]:
    """The JAX peer's columns of a stacked row (`JAX_COLUMNS`): its per-model median and
    quartiles, and stacked / JAX as `against_peer` gives it (JAX is timed interleaved with the
    stacked step); all None where the run has no JAX benchmark (JAX not installed)."""
    if jax is None:
        return dict.fromkeys(JAX_COLUMNS)
    ratio, low, high, _ = against_peer(stacked, jax, jax)
    return {
        "jax_s": _per_model(jax, "median"),
        "jax_q1_s": _per_model(jax, "q1"),
        "jax_q3_s": _per_model(jax, "q3"),
        "jax_version": jax["extra_info"].get("jax"),
        "ratio_jax": ratio,
        "ratio_jax_low": low,
        "ratio_jax_high": high,
    }


def _optimizer_key(column: pd.Series) -> pd.Series:
    if column.name == "model":
        return column.map(lambda v: v != "mlp")  # the Table III MLP first, then the CNN
    return column.map(lambda v: (v != "sgd", v)) if column.name == "optimizer" else column


def _seconds_column(contender: str) -> str:
    return {
        "stacked": "stacked_s",
        "torch.func": "func_s",
        "sequential custom": "sequential_custom_s",
        "sequential torch.nn": "sequential_torch_s",
        "JAX": "jax_s",
    }[contender]


def _us(seconds: float | None) -> str:
    return "—" if seconds is None or pd.isna(seconds) else f"{seconds * 1e6:.3g}"


def _ratio(value: float | None) -> str:
    return "—" if value is None or pd.isna(value) else f"{value:.3f}"


def _ratio_range(ratio: float | None, low: float | None, high: float | None) -> str:
    """A paired ratio with its IQR, or one of medians (no range) marked as such."""
    if ratio is None or pd.isna(ratio):
        return "—"
    if low is None or pd.isna(low):
        return f"{ratio:.3f} (of medians)"
    return f"{ratio:.3f} ({low:.3f}–{high:.3f})"


def _met(value: Any) -> str:
    return "—" if value is None or pd.isna(value) else ("yes" if value else "**no**")


def stacked_markdown(frame: pd.DataFrame) -> list[str]:
    """The stacked section of summary.md."""
    first = frame.iloc[0]
    peak = first["peak_gflops"]
    lines = [
        "",
        "### Stacked models: time per model and step",
        "",
        "Training M models of one architecture: `fw.stack` of M models (weights `(M, out, in)`, "
        "one batched program, `fw.StackedLoss`), against **torch.func** (the strongest torch "
        "peer: `stack_module_state` of the M torch.nn models, `vmap` of `functional_call` and "
        "the per-model loss, autograd through their sum, torch.optim over the stacked "
        "parameters), and the same M models trained one after another with the framework "
        "(*sequential custom*) and with torch.nn + torch.optim (*sequential torch.nn*; one "
        "model's step, the same for each). "
        f"Table III model ({first['layers']}, ReLU, sigmoid output, {first['loss']}, "
        f"{first['dtype']}, batch {first['batch_size']}), one thread, "
        "`tests/benchmarks/test_stacked.py`; times are medians per model and step "
        "(a stacked step divided by M), in µs, stacked and torch.func timed interleaved; "
        "stacked / torch.func, its range, *of medians* and *min ratio* as in the table above. "
        "stacked / sequential custom is measured the same way, block by block against the same "
        "M framework models stepped one after another, timed interleaved with the stacked step "
        "(its IQR in brackets); where that would take seconds a step (M = 1000) it is the "
        "stacked time over the one model's, *of medians*. "
        "Targets (on the ratios): stacked ≤ "
        f"{STACK_VS_FUNC[1]} × torch.func at M = {STACK_VS_FUNC[0]}, stacked ≤ "
        f"{STACK_VS_SEQUENTIAL[1]} × sequential custom at M = {STACK_VS_SEQUENTIAL[0]}. "
        "Rows *CNN*: the digits CNN (Figure 6: Conv-BatchNorm-ReLU-MaxPool twice, Linear; "
        "cross-entropy, SGD with momentum, float32, batch 64), each contender built by the "
        "harness's engines (`test_stacked_cnn_step`); its sequential custom is the M models' "
        "adapters stepped one after another, interleaved with the stacked step; targets: "
        f"stacked ≤ {CNN_STACK_VS_FUNC[1]} × torch.func at M = {CNN_STACK_VS_FUNC[0]}, stacked "
        f"≤ {CNN_STACK_VS_SEQUENTIAL[1]} × sequential custom at M = "
        f"{CNN_STACK_VS_SEQUENTIAL[0]}.",
        "",
        "| optimizer | M | stacked | torch.func | stacked / torch.func | range (IQR) "
        "| of medians | min ratio | sequential custom | sequential torch.nn "
        "| stacked / sequential custom | target | met |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|:-:|",
    ]
    for row in frame.itertuples():
        targets, met = [], []
        if not pd.isna(row.target_func):
            targets.append(f"stacked / torch.func ≤ {row.target_func:g}")
            met.append(_met(row.met_func))
        if not pd.isna(row.target_sequential):
            targets.append(f"stacked / sequential custom ≤ {row.target_sequential:g}")
            met.append(_met(row.met_sequential))
        sequential = _ratio_range(
            row.ratio_sequential, row.ratio_sequential_low, row.ratio_sequential_high
        )
        name = row.optimizer if row.model == "mlp" else f"CNN, {row.optimizer}"
        lines.append(
            f"| {name} | {row.models} | {_us(row.stacked_s)} | {_us(row.func_s)} "
            f"| {_ratio(row.ratio_func)} | {row.ratio_func_low:.3f}–{row.ratio_func_high:.3f} "
            f"| {_ratio(row.ratio_func_of_medians)} | {_ratio(row.ratio_func_min)} "
            f"| {_us(row.sequential_custom_s)} | {_us(row.sequential_torch_s)} "
            f"| {sequential} | {'; '.join(targets) or '—'} "
            f"| {', '.join(met) or '—'} |"
        )
    lines += jax_markdown(frame)
    lines += [
        "",
        "Roofline: the useful arithmetic of one model's step (forward and backward products "
        "and biases, the update; "
        f"{first['flops_per_model_step'] / 1e6:.3g} MFLOP with SGD) divided by its time, in "
        "GFLOP/s, against this thread's float32 matrix-product peak measured in the same run "
        + (
            f"(a 1024×1024 `torch.mm`: **{peak:.1f} GFLOP/s**)."
            if peak is not None and not pd.isna(peak)
            else "(not measured)."
        ),
        "",
        "| optimizer | M | stacked | torch.func | sequential custom | sequential torch.nn "
        "| JAX | stacked, % of peak |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in frame.itertuples():
        share = "—" if peak is None or pd.isna(peak) else f"{100 * row.gflops_stacked / peak:.1f} %"
        lines.append(
            f"| {row.optimizer} | {row.models} | {_gflops(row.gflops_stacked)} "
            f"| {_gflops(row.gflops_func)} | {_gflops(row.gflops_sequential_custom)} "
            f"| {_gflops(row.gflops_sequential_torch)} | {_gflops(row.gflops_jax)} | {share} |"
        )
    lines += [
        "",
        "`stacked.png` (next to this file) plots the time per model against M and the "
        "GFLOP/s under the peak.",
    ]
    return lines


def jax_markdown(frame: pd.DataFrame) -> list[str]:
    """The outside peer's lines of the stacked section: the MLP rows' JAX times and stacked /
    JAX, or a line saying JAX was not timed."""
    rows = frame[(frame["model"] == "mlp") & frame["jax_s"].notna()]
    if rows.empty:
        return [
            "",
            "**JAX** (an outside peer, the optional `jax` extra): not installed in this run, "
            "so not timed; `make bench` installs it where it can.",
        ]
    version = rows["jax_version"].dropna()
    lines = [
        "",
        f"**JAX {version.iloc[0] if len(version) else ''}** (an outside peer: the same M "
        "models as one `jax.jit` of `jax.vmap` of the per-model loss, `jax.grad` of their sum "
        "and torch.optim's update rule in `jax.numpy`, on one core; timed interleaved with the "
        "stacked step, whose weights it reaches, "
        "`test_jax_peer_trains_as_the_stacked_framework_float32`). stacked / JAX block by block, "
        "its IQR in brackets; µs per model and step:",
        "",
        "| optimizer | M | stacked | JAX | stacked / JAX |",
        "|---|--:|--:|--:|--:|",
    ]
    for row in rows.itertuples():
        lines.append(
            f"| {row.optimizer} | {row.models} | {_us(row.stacked_s)} | {_us(row.jax_s)} "
            f"| {_ratio_range(row.ratio_jax, row.ratio_jax_low, row.ratio_jax_high)} |"
        )
    return lines


def _gflops(value: float | None) -> str:
    return "—" if value is None or pd.isna(value) else f"{value:.3g}"


def stacked_figure(frame: pd.DataFrame) -> Figure:
    """Per-model step time against M (log-log), one panel per optimizer, and GFLOP/s against
    M under the measured peak."""
    optimizers = [o for o in ("sgd", "adam") if o in set(frame["optimizer"])]
    colours = {name: PALETTE[index] for index, name in enumerate(CONTENDERS)}
    markers = {"stacked": "o", "torch.func": "s", "JAX": "^"}
    # JAX where the run timed it (the optional extra), beside the two stacked contenders
    timed = [name for name in markers if frame[_seconds_column(name)].notna().any()]
    with sns.axes_style(RC), sns.plotting_context(rc=RC), matplotlib.rc_context(RC):
        fig = Figure(figsize=(5 * (len(optimizers) + 1), 5.2), layout="constrained")
        axes = fig.subplots(1, len(optimizers) + 1)
        for ax, optimizer in zip(axes, optimizers, strict=False):
            rows = frame[frame["optimizer"] == optimizer].sort_values("models")
            models = rows["models"].to_numpy()
            for name in timed:
                column = _seconds_column(name)
                prefix = column[:-2]
                ax.errorbar(
                    models,
                    rows[column].astype(float) * 1e6,
                    yerr=[
                        (rows[column] - rows[f"{prefix}_q1_s"]).astype(float) * 1e6,
                        (rows[f"{prefix}_q3_s"] - rows[column]).astype(float) * 1e6,
                    ],
                    color=colours[name],
                    marker=markers[name],
                    capsize=3,
                    label=name,
                )
            for name in ("sequential custom", "sequential torch.nn"):
                value = rows[_seconds_column(name)].dropna()
                if len(value):
                    ax.axhline(
                        value.iloc[0] * 1e6,
                        color=colours[name],
                        linestyle="--",
                        linewidth=1.5,
                        label=f"{name} (one model after another)",
                    )
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xticks(models)
            ax.set_xticklabels([str(m) for m in models])
            ax.minorticks_off()
            ax.set_xlabel("models trained at once, M")
            ax.set_ylabel("time per model and step (µs)")
            ax.set_title(optimizer.upper() if optimizer == "sgd" else optimizer.capitalize())
            if optimizer == optimizers[0]:  # the same four contenders in every panel
                ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, frameon=False)
        roof = axes[-1]
        styles = {"sgd": "-", "adam": ":"}
        for optimizer in optimizers:
            rows = frame[frame["optimizer"] == optimizer].sort_values("models")
            for name in timed:
                roof.plot(
                    rows["models"],
                    rows[f"gflops_{_seconds_column(name)[:-2]}"].astype(float),
                    color=colours[name],
                    marker=markers[name],
                    linestyle=styles[optimizer],
                    label=f"{name}, {optimizer}",
                )
        peak = frame["peak_gflops"].iloc[0]
        if peak is not None and not pd.isna(peak):
            roof.axhline(peak, color="0.3", linewidth=1.5, label=f"peak (mm): {peak:.0f} GFLOP/s")
        roof.set_xscale("log")
        roof.set_yscale("log")
        models = sorted(frame["models"].unique())
        roof.set_xticks(models)
        roof.set_xticklabels([str(m) for m in models])
        roof.minorticks_off()
        roof.set_xlabel("models trained at once, M")
        roof.set_ylabel("achieved GFLOP/s (useful FLOPs / time)")
        roof.set_title("Roofline")
        roof.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, frameon=False)
        first = frame.iloc[0]
        fig.suptitle(
            f"M models of {first['layers']}, batch {first['batch_size']}, 1 thread: "
            f"stacked framework, torch.func{', JAX' if 'JAX' in timed else ''}, "
            "one after another"
        )
    return fig


def _save(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    png, svg = out_dir / f"{stem}.png", out_dir / f"{stem}.svg"
    with matplotlib.rc_context(RC):
        with atomic.atomic_path(png) as temp:  # a failed write keeps the previous file whole
            fig.savefig(temp, format="png", dpi=PNG_DPI, metadata=PNG_METADATA)
        fig.set_layout_engine("none")
        with atomic.atomic_path(svg) as temp:
            fig.savefig(temp, format="svg", metadata=SVG_METADATA)
    return [png, svg]


def write(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write summary.md, summary.csv, ratio.png/svg and (with stacked groups)
    stacked.png/svg into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = table(report)
    stacked = stacked_table(report)
    written = [out_dir / "summary.md", out_dir / "summary.csv"]
    text = markdown(report, frame)
    if stacked is not None:
        regenerate = text.rindex("\nRegenerate:")
        text = text[:regenerate] + "\n".join(stacked_markdown(stacked)) + "\n" + text[regenerate:]
    atomic.write_text(written[0], text)
    csv = frame.assign(section="ratio")
    if stacked is not None:
        csv = pd.concat([csv, stacked], ignore_index=True)
    atomic.write_text(written[1], csv.to_csv(index=False, float_format="%.6g", lineterminator="\n"))
    if frame["group"].str.match(r"^scale-w\d+-b\d+$").any():
        written += _save(figure(frame), out_dir, "ratio")
    if stacked is not None and (stacked["model"] == "mlp").any():  # the Table III MLP against M
        written += _save(stacked_figure(stacked[stacked["model"] == "mlp"]), out_dir, "stacked")
    return written


def _load(path: Path) -> dict[str, Any]:
    """The benchmark JSON at ``path``; ValueError (one line) when it is missing, empty, not
    JSON or not pytest-benchmark's."""
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a pytest-benchmark JSON file")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{path}: not found (run `make bench` to write it)") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: unreadable ({error})") from None
    if not text.strip():
        raise ValueError(f"{path}: empty file (an interrupted `make bench`? run it again)")
    try:
        report = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise ValueError(f"{path}: not valid JSON (truncated?): {error}") from None
    if not isinstance(report, dict) or not isinstance(report.get("benchmarks"), list):
        raise ValueError(f"{path}: not a pytest-benchmark JSON (no 'benchmarks' list)")
    if not report["benchmarks"]:
        raise ValueError(f"{path}: holds no benchmarks")
    return report


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2: an unusable JSON or output)."""
    summary = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m bench.report.speed", description=summary)
    parser.add_argument("json", type=Path, help="pytest-benchmark JSON (--benchmark-json)")
    parser.add_argument("--out", type=Path, default=Path("reports/benchmarks"))
    args = parser.parse_args(argv)
    atomic.ignore_file_size_signal()  # past `ulimit -f`: an error we report, not a kill
    try:
        report = _load(args.json)
        written = write(report, args.out)
    except OSError as error:
        where = error.filename or args.out
        print(f"bench.report.speed: error: cannot write {where}: {error.strerror or error}",
              file=sys.stderr)  # fmt: skip
        return 2
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        if isinstance(error, (KeyError, TypeError, AttributeError)):
            message = f"{args.json}: not the pytest-benchmark JSON this reads ({error!r})"
        print(f"bench.report.speed: error: {message}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
