"""The speed report (bench.report.speed) from a synthetic pytest-benchmark JSON of known times:
the ratio table, the stacked-models section (per-model times, ratios, targets, GFLOP/s against the
peak), the CSV and the figures, byte-identical when written twice."""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pytest

from bench.report import speed

FLOPS = 800_000  # per model and step
PEAK_FLOPS = 2 * 1024**3


def entry(group: str, framework: str, median: float, **info) -> dict:
    """One benchmark of the JSON, its quartiles ±10% around ``median`` (seconds)."""
    return {
        "group": group,
        "params": {},
        "extra_info": {
            "framework": framework,
            "threads": 1,
            "torch": "2.x",
            "layers": "2-25-25-25-1",
            "hidden_width": 25,
            "batch_size": 100,
            "optimizer": group.split("-")[1] if "-" in group else "sgd",
            "loss": "mse",
            "dtype": "float32",
            **info,
        },
        "stats": {
            "median": median,
            "q1": 0.9 * median,
            "q3": 1.1 * median,
            "iqr": 0.2 * median,
            "min": 0.8 * median,
            "rounds": 20,
        },
    }


# Per model and step, in µs: SGD stacked meets both targets, Adam misses both.
STACKED_US = {
    "sgd": {1: 200, 10: 30, 100: 20, 1000: 25},
    "adam": {1: 400, 10: 80, 100: 40, 1000: 60},
}
FUNC_US = {
    "sgd": {1: 1000, 10: 150, 100: 50, 1000: 45},
    "adam": {1: 1400, 10: 200, 100: 60, 1000: 80},
}
SEQUENTIAL_US = {"sgd": (100, 400), "adam": (120, 700)}  # (custom, torch.nn)


def report() -> dict:
    benchmarks = [entry("step-sgd", "custom", 120e-6), entry("step-sgd", "torch", 320e-6)]
    for optimizer in ("sgd", "adam"):
        custom, torch_nn = SEQUENTIAL_US[optimizer]
        for loss in ("mse", "bce"):
            group = f"sequential-{optimizer}-{loss}-optimizer_zero_grad"
            for framework, time in (("custom", custom), ("torch", torch_nn)):
                benchmarks.append(
                    entry(
                        group,
                        framework,
                        time * 1e-6,
                        contender=f"sequential {framework}",
                        models=1,
                        flops_per_model_step=FLOPS,
                    )
                )
        for models in (1, 10, 100, 1000):
            group = f"stack-{optimizer}-m{models}"
            for contender, times in (("stacked", STACKED_US), ("func", FUNC_US)):
                benchmarks.append(
                    entry(
                        group,
                        "custom" if contender == "stacked" else "torch",
                        times[optimizer][models] * models * 1e-6,  # a stacked step: M models
                        contender=contender,
                        models=models,
                        flops_per_model_step=FLOPS,
                    )
                )
    benchmarks.append(
        entry("peak", "peak", PEAK_FLOPS / 100e9, contender="torch.mm", flops=PEAK_FLOPS)
    )
    return {
        "benchmarks": benchmarks,
        "machine_info": {"cpu": {"brand_raw": "Test CPU", "count": 2}, "python_version": "3.11"},
        "datetime": "2026-01-01T00:00:00",
        "version": "5.0",
    }


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("speed")
    speed.write(report(), out)
    return out


def test_stacked_table_has_per_model_times_ratios_and_targets():
    frame = speed.stacked_table(report())
    assert list(zip(frame["optimizer"], frame["models"], strict=True)) == [
        (o, m) for o in ("sgd", "adam") for m in (1, 10, 100, 1000)
    ]
    for row in frame.itertuples():
        assert row.stacked_s == pytest.approx(STACKED_US[row.optimizer][row.models] * 1e-6)
        assert row.func_s == pytest.approx(FUNC_US[row.optimizer][row.models] * 1e-6)
        assert row.ratio_func == pytest.approx(row.stacked_s / row.func_s)
        custom, torch_nn = SEQUENTIAL_US[row.optimizer]
        assert row.sequential_custom_s == pytest.approx(custom * 1e-6)
        assert row.sequential_torch_s == pytest.approx(torch_nn * 1e-6)
        assert row.gflops_stacked == pytest.approx(FLOPS / row.stacked_s / 1e9)
        assert row.peak_gflops == pytest.approx(100.0)
    sgd = frame.set_index(["optimizer", "models"])
    assert sgd.loc[("sgd", 100), "met_func"] is True  # 20 / 50 = 0.4
    assert sgd.loc[("adam", 100), "met_func"] is False  # 40 / 60 = 0.67
    assert sgd.loc[("sgd", 10), "met_sequential"] is True  # 30 / 100
    assert sgd.loc[("adam", 10), "met_sequential"] is False  # 80 / 120
    assert pd.isna(sgd.loc[("sgd", 1000), "target_func"])


def test_summary_has_the_stacked_section_with_met_yes_and_no(written: Path):
    text = (written / "summary.md").read_text()
    assert text.index("### Custom framework / torch.nn") < text.index("### Stacked models")
    assert text.index("### Stacked models") < text.index("Regenerate:")
    assert (
        "| sgd | 100 | 20 | 50 | 0.400 | 0.327–0.489 | 0.400 | 0.400 | 100 | 400 "
        "| 0.200 (of medians) | stacked / torch.func ≤ 0.5 | yes |" in text
    )
    assert "| adam | 100 | 40 | 60 | 0.667 |" in text and "≤ 0.5 | **no** |" in text
    assert "| adam | 10 | 80 | 200 | 0.400 |" in text and "≤ 0.6 | **no** |" in text
    assert "**100.0 GFLOP/s**" in text
    assert "| sgd | 100 | 40 | 16 | 8 | 2 | — | 40.0 % |" in text  # GFLOP/s of each, % of peak
    assert "**JAX** (an outside peer, the optional `jax` extra): not installed in this run" in text
    # The sequential groups are custom / torch.nn pairs of the main table, with the 0.5 target.
    assert "| sequential-sgd-mse-optimizer_zero_grad | one training step, framework API" in text


def test_csv_holds_both_sections(written: Path):
    csv = pd.read_csv(written / "summary.csv")
    assert set(csv["section"]) == {"ratio", "stacked"}
    stacked = csv[csv["section"] == "stacked"]
    assert len(stacked) == 8
    assert stacked["stacked_s"].min() == pytest.approx(20e-6)


def test_figures_are_written_and_byte_identical_twice(written: Path, tmp_path: Path):
    speed.write(copy.deepcopy(report()), tmp_path)
    for name in ("summary.md", "summary.csv", "stacked.png", "stacked.svg"):
        assert (written / name).read_bytes() == (tmp_path / name).read_bytes(), name
    assert (written / "stacked.png").read_bytes().startswith(b"\x89PNG")
    assert (written / "stacked.png").stat().st_size > 10_000


def test_no_stacked_section_without_stacked_groups(tmp_path: Path):
    plain = report()
    plain["benchmarks"] = [b for b in plain["benchmarks"] if not b["group"].startswith("stack-")]
    speed.write(plain, tmp_path)
    assert "Stacked models" not in (tmp_path / "summary.md").read_text()
    assert not (tmp_path / "stacked.png").exists()


def drifted_group(group: str, custom: str, torch: str, **info) -> list[dict]:
    """A group timed while the machine drifted: the custom benchmark's rounds ran in a phase 2x
    slower than the torch one's (custom median 2 ms against torch 2.5 ms: 0.8 by the medians),
    while its paired blocks, each beside a block of the other run just before it, say 0.4."""
    custom_entry = entry(group, custom, 2e-3, **info)
    torch_entry = entry(group, torch, 2.5e-3, **info)
    # [own median step, the other's in the block before]: custom blocks over torch blocks ...
    custom_entry["extra_info"]["paired"] = [[2e-3, 5e-3], [2.2e-3, 5e-3], [1.8e-3, 5e-3]]
    # ... and torch blocks after custom blocks (custom / torch = other / own).
    torch_entry["extra_info"]["paired"] = [[2.5e-3, 1e-3], [2.5e-3, 1.25e-3]]
    return [custom_entry, torch_entry]


def test_ratio_is_the_median_of_the_paired_blocks_of_both_benchmarks_not_of_the_medians():
    pooled = pd.Series([2 / 5, 2.2 / 5, 1.8 / 5, 1 / 2.5, 1.25 / 2.5])
    plain = {"benchmarks": drifted_group("step-sgd", "custom", "torch"), "version": "5.0"}
    row = speed.table(plain).iloc[0]
    assert row["ratio"] == pytest.approx(pooled.median())  # 0.4
    assert row["ratio_low"] == pytest.approx(pooled.quantile(0.25))
    assert row["ratio_high"] == pytest.approx(pooled.quantile(0.75))
    assert row["paired_blocks"] == 5
    assert row["ratio_of_medians"] == pytest.approx(0.8)
    assert bool(row["met"]) is True  # judged on the paired ratio: 0.4 ≤ 0.5


def test_stacked_ratio_is_the_median_of_the_paired_blocks(tmp_path: Path):
    drifted = report()
    drifted["benchmarks"] = [b for b in drifted["benchmarks"] if b["group"] != "stack-sgd-m100"]
    info = {"models": 100, "flops_per_model_step": FLOPS}
    custom, func = drifted_group("stack-sgd-m100", "custom", "torch", **info)
    custom["extra_info"]["contender"], func["extra_info"]["contender"] = "stacked", "func"
    drifted["benchmarks"] += [custom, func]
    frame = speed.stacked_table(drifted).set_index(["optimizer", "models"])
    assert frame.loc[("sgd", 100), "ratio_func"] == pytest.approx(0.4)
    assert frame.loc[("sgd", 100), "ratio_func_of_medians"] == pytest.approx(0.8)
    assert frame.loc[("sgd", 100), "met_func"] is True
    assert frame.loc[("sgd", 10), "paired_blocks"] == 0  # no blocks kept: ratio of the medians
    speed.write(drifted, tmp_path)
    text = (tmp_path / "summary.md").read_text()
    assert "| sgd | 100 | 20 | 25 | 0.400 | 0.400–0.440 | 0.800 | 0.800 |" in text


def test_stacked_over_sequential_is_the_median_of_the_one_after_another_blocks(tmp_path: Path):
    """Where the group also timed its M models one after another (interleaved with the stacked
    step), stacked / sequential custom comes from those blocks, not from the one-model
    benchmark timed minutes apart."""
    paired = report()
    # 10 models one after another, 1 ms a step; each block over the stacked block before it
    # (stacked 0.3 ms a step, then 0.2 ms: the machine sped up, both blocks moved together).
    sequential = entry("stack-sgd-m10", "custom", 1e-3, contender="sequential", models=10)
    sequential["extra_info"]["paired"] = [[1e-3, 0.3e-3], [0.5e-3, 0.1e-3], [0.8e-3, 0.2e-3]]
    paired["benchmarks"].append(sequential)
    blocks = pd.Series([0.3 / 1, 0.1 / 0.5, 0.2 / 0.8])
    frame = speed.stacked_table(paired).set_index(["optimizer", "models"])
    row = frame.loc[("sgd", 10)]
    assert row["ratio_sequential"] == pytest.approx(blocks.median())  # 0.25
    assert row["ratio_sequential_low"] == pytest.approx(blocks.quantile(0.25))
    assert row["ratio_sequential_high"] == pytest.approx(blocks.quantile(0.75))
    assert row["sequential_paired_blocks"] == 3
    assert row["met_sequential"] is True
    # The one-model benchmark still gives the per-model time, and M without blocks its ratio.
    assert row["sequential_custom_s"] == pytest.approx(SEQUENTIAL_US["sgd"][0] * 1e-6)
    assert frame.loc[("sgd", 100), "ratio_sequential"] == pytest.approx(20 / 100)
    assert frame.loc[("sgd", 100), "sequential_paired_blocks"] == 0
    speed.write(paired, tmp_path)
    text = (tmp_path / "summary.md").read_text()
    assert "| 100 | 400 | 0.250 (0.225–0.275) | stacked / sequential custom ≤ 0.6 | yes |" in text


def test_jax_rows_give_stacked_over_jax_from_their_paired_blocks(tmp_path: Path):
    """Where the run timed JAX (interleaved with the stacked step), its per-model time and
    stacked / JAX block by block appear beside the stacked rows, in the CSV and the figure."""
    with_jax = report()
    for models, jax_us in ((10, 60), (100, 40)):
        jax = entry(
            f"stack-sgd-m{models}", "jax", jax_us * models * 1e-6, contender="jax",
            models=models, jax="0.8.0", flops_per_model_step=FLOPS,
        )  # fmt: skip
        # each block: [JAX's median step, the stacked block's just before it]
        jax["extra_info"]["paired"] = [[4e-3, 2e-3], [4e-3, 1.6e-3], [5e-3, 2.5e-3]]
        with_jax["benchmarks"].append(jax)
    # an older JSON's benchmark without blocks: the ratio of the medians, no range
    with_jax["benchmarks"].append(
        entry("stack-adam-m10", "jax", 100 * 10 * 1e-6, contender="jax", models=10)
    )
    blocks = pd.Series([2 / 4, 1.6 / 4, 2.5 / 5])
    frame = speed.stacked_table(with_jax).set_index(["optimizer", "models"])
    row = frame.loc[("sgd", 100)]
    assert row["jax_s"] == pytest.approx(40e-6)
    assert row["ratio_jax"] == pytest.approx(blocks.median())
    assert row["ratio_jax_low"] == pytest.approx(blocks.quantile(0.25))
    assert row["gflops_jax"] == pytest.approx(FLOPS / 40e-6 / 1e9)
    assert pd.isna(frame.loc[("adam", 100), "jax_s"])  # not timed for Adam at M = 100
    assert frame.loc[("adam", 10), "ratio_jax"] == pytest.approx(80 / 100)
    assert pd.isna(frame.loc[("adam", 10), "ratio_jax_low"])
    speed.write(with_jax, tmp_path)
    text = (tmp_path / "summary.md").read_text()
    assert "**JAX 0.8.0** (an outside peer" in text
    assert "| sgd | 100 | 20 | 40 | 0.500 (0.450–0.500) |" in text
    assert "| adam | 10 | 80 | 100 | 0.800 (of medians) |" in text
    assert "| sgd | 100 | 40 | 16 | 8 | 2 | 20 | 40.0 % |" in text
    csv = pd.read_csv(tmp_path / "summary.csv")
    assert csv.loc[csv["group"] == "stack-sgd-m10", "jax_s"].iloc[0] == pytest.approx(60e-6)
    assert (tmp_path / "stacked.png").stat().st_size > 0
