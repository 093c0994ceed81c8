"""Table III, the summary and the equivalence table equal a direct pandas computation."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from report_data import make_results

from bench.report import tables, views

RTOL = 1e-12


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return make_results(folds=4, epochs=6, diverged=[("fig5_frameworks", "float32", 2)], seed=3)


@pytest.fixture(scope="module")
def df(raw: pd.DataFrame) -> pd.DataFrame:
    return views.prepare(raw)


def _direct_table3(raw: pd.DataFrame) -> pd.DataFrame:
    """Table III as the paper defines it: fig5_frameworks, float32, last epoch, 1 − error, of
    one model trained alone (the sequential engine)."""
    d = raw[(raw["experiment"] == "fig5_frameworks") & (raw["dtype"] == "float32")]
    d = d[d["engine"] == "sequential"]
    last = d[(d["epoch"] == d["epoch"].max()) & d["test_error"].notna()]
    g = last.assign(train_acc=1 - last["train_error"], test_acc=1 - last["test_error"]).groupby(
        "framework"
    )
    return pd.DataFrame(
        {
            "n_folds": g.size(),
            "train_acc_mean": g["train_acc"].mean(),
            "train_acc_sd": g["train_acc"].std(),
            "test_acc_mean": g["test_acc"].mean(),
            "test_acc_sd": g["test_acc"].std(),
            "time_s_mean": g["train_seconds"].mean(),
            "time_s_sd": g["train_seconds"].std(),
        }
    )


def test_table3_equals_direct_pandas(raw: pd.DataFrame, df: pd.DataFrame) -> None:
    expected = _direct_table3(raw)
    ours = tables.table3(df)
    mine = ours[ours["source"] == "this run"].set_index("framework")
    assert list(mine["n_folds"]) == [3, 3]  # the diverged fold is left out
    for col in expected.columns:
        np.testing.assert_allclose(
            mine.loc[expected.index, col].astype(float), expected[col], rtol=RTOL, err_msg=col
        )


def test_table3_csv_round_trips_exactly(df: pd.DataFrame, tmp_path) -> None:
    built = tables.build_tables(df, tmp_path)
    back = pd.read_csv(tmp_path / "table3.csv")
    pd.testing.assert_frame_equal(
        back.drop(columns="n_folds"), built.table3.drop(columns="n_folds"), check_dtype=False
    )
    assert (tmp_path / "table3.tex").read_text().startswith("\\begin{table}")


def test_table3_paper_rows_beside_ours(df: pd.DataFrame) -> None:
    t = tables.table3(df)
    assert list(zip(t["framework"], t["source"], strict=True)) == [
        ("custom", "this run"),
        ("custom", "paper"),
        ("torch", "this run"),
        ("torch", "paper"),
    ]
    paper = t[t["source"] == "paper"].set_index("framework")
    assert paper.loc["custom", ["train_acc_mean", "test_acc_mean", "time_s_mean"]].tolist() == [
        0.972,
        0.947,
        2.012,
    ]
    assert paper.loc["torch", ["train_acc_mean", "test_acc_mean", "time_s_mean"]].tolist() == [
        0.991,
        0.949,
        1.614,
    ]


def test_table3_markdown_shows_mean_pm_sd(raw: pd.DataFrame, df: pd.DataFrame) -> None:
    md = tables.table3_markdown(tables.table3(df))
    e = _direct_table3(raw)
    assert f"{e.loc['torch', 'test_acc_mean']:.3f} ± {e.loc['torch', 'test_acc_sd']:.3f}" in md
    assert f"{e.loc['custom', 'time_s_mean']:.3f} ± {e.loc['custom', 'time_s_sd']:.3f}" in md
    assert " 0.972 |" in md and " 1.614 |" in md
    assert "$\\pm$" in tables.table3_latex(tables.table3(df))


def test_summary_equals_direct_pandas(raw: pd.DataFrame, df: pd.DataFrame) -> None:
    d = raw[raw["experiment"] == "fig2_activations"]
    last = d[d["epoch"] == d["epoch"].max()]
    expected = last.groupby("activation")[["train_error", "test_error"]].agg(["mean", "std"])
    s = tables.summary(df)
    mine = s[s["experiment"] == "fig2_activations"].set_index("activation")
    for metric in ("train_error", "test_error"):
        for stat, col in (("mean", f"{metric}_mean"), ("std", f"{metric}_sd")):
            np.testing.assert_allclose(
                mine.loc[expected.index, col], expected[(metric, stat)], rtol=RTOL
            )
    assert list(mine.index) == ["relu", "tanh", "leaky_relu", "elu"]  # the paper's order


def test_summary_has_every_experiment_and_csv_parses(df: pd.DataFrame) -> None:
    s = tables.summary(df)
    assert list(s["experiment"].unique()) == list(views.EXPERIMENTS)
    back = pd.read_csv(io.StringIO(s.to_csv(index=False)))
    expected = sum(len(views.expected_configs(name)) for name in views.EXPERIMENTS)
    assert len(back) == len(s) == expected
    md = tables.summary_markdown(s)
    assert md.count("### ") == len(views.EXPERIMENTS)
    assert "1/4 folds diverged" in md


def test_equivalence_equals_direct_pandas(raw: pd.DataFrame, df: pd.DataFrame) -> None:
    d = raw[raw["experiment"] == "fig5_frameworks"]
    wide = d.pivot_table(
        index=["engine", "dtype", "fold", "epoch"], columns="framework", values="train_loss"
    ).dropna()
    diff = (wide["custom"] - wide["torch"]).abs().rename("diff").reset_index()
    e = tables.equivalence(df).set_index(["engine", "dtype"])
    assert len(e) == 4  # both engines, both dtypes
    for key, part in diff.groupby(["engine", "dtype"]):
        last = part[part["epoch"] == part["epoch"].max()]
        assert e.loc[key, "max_abs_diff_any"] == part["diff"].max()
        assert e.loc[key, "max_abs_diff_last"] == last["diff"].max()
        assert e.loc[key, "n_zero"] == (part["diff"] == 0).sum() == 4  # epoch 0 of each fold
        assert e.loc[key, "n_pairs"] == len(part)
    for engine in ("sequential", "stacked"):
        assert (
            e.loc[(engine, "float64"), "max_abs_diff_any"]
            < e.loc[(engine, "float32"), "max_abs_diff_any"]
        )


@pytest.mark.parametrize(
    ("mean", "sd", "text"),
    [
        (0.97234, 0.0041, "0.972 ± 0.004"),
        (0.5, float("nan"), "0.500 (1 fold: no sd)"),
        (float("nan"), 0.1, "—"),
    ],
)
def test_pm_format(mean: float, sd: float, text: str) -> None:
    assert tables.pm(mean, sd) == text


def test_cell_escapes_pipes_and_keeps_first_line() -> None:
    assert tables.cell("ValueError: a|b\nTraceback ...") == "ValueError: a\\|b"
    assert len(tables.cell("x" * 500, 80)) == 80


def test_lr_selection_is_per_replicate_and_chooses_on_validation_recomputed_with_pandas() -> None:
    """Each replicate of fig3_tuned picks its own rate: the lowest final validation error of its
    own rates (ties: lower validation loss, then smaller lr), recomputed here with pandas; it is
    judged on the test set at that rate; one CSV row per optimizer × replicate."""
    raw = make_results(experiments=["fig3_tuned"], folds=5, epochs=6, seed=2)
    per = tables.lr_selection(views.prepare(raw))
    assert len(per) == 4 * 5 and list(per.columns) == tables.LR_SELECTION_COLUMNS
    last = raw[raw["epoch"] == 6]
    for row in per.itertuples(index=False):
        mine = last[(last["optimizer"] == row.optimizer) & (last["fold"] == row.fold)]
        best = mine.sort_values(["val_error", "val_loss", "lr"]).iloc[0]
        assert row.chosen_lr == best["lr"] and row.val_error == best["val_error"]
        assert row.test_error == best["test_error"]


def test_lr_choice_never_reads_the_test_set() -> None:
    """Scrambling every test error changes no replicate's choice."""
    raw = make_results(experiments=["fig3_tuned"], folds=4, epochs=5, seed=1)
    scrambled = raw.assign(test_error=np.random.default_rng(0).uniform(0, 1, len(raw)))
    rows = [
        views.experiment_rows(views.prepare(r), "fig3_tuned", grid=True) for r in (raw, scrambled)
    ]
    first, second = (views.lr_choices(r)["chosen_lr"].to_numpy() for r in rows)
    assert (first == second).all()


def test_lr_summary_counts_how_often_each_rate_won() -> None:
    raw = make_results(experiments=["fig3_tuned", "fig3_optimizers"], folds=6, epochs=6)
    df = views.prepare(raw)
    per = tables.lr_selection(df)
    summary = tables.lr_summary(df, per).set_index("optimizer")
    for optimizer, group in per.groupby("optimizer"):
        counts = group["chosen_lr"].value_counts()
        assert summary.loc[optimizer, "n_modal"] == counts.max()
        assert summary.loc[optimizer, "n_distinct"] == len(counts)
        assert summary.loc[optimizer, "test_error_mean"] == pytest.approx(
            group["test_error"].mean()
        )
    text = tables.lr_selection_markdown(summary.reset_index(), per)
    assert "Chosen by the replicates (how often)" in text and "/6)" in text
