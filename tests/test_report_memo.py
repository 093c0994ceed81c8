"""What the report computes once per table (`bench.report.memo`) equals computing it afresh; the
replayed looks that reuse a verdict equal evaluating every look; figures drawn in worker
processes are the bytes drawn here; collect's row comparison finds what the text of the rows
finds."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_data import make_results

from bench.harness import collect
from bench.report import claims, figures, sequential, views
from bench.study import ClaimSpec


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    experiments = ["fig2_activations", "fig3_tuned", "fig4_losses"]
    return views.prepare(make_results(experiments=experiments, folds=4, epochs=5, seed=2))


def test_cached_experiment_rows_equal_the_filtered_table(df: pd.DataFrame) -> None:
    for name in ("fig2_activations", "fig3_tuned", "fig4_losses", "digits"):
        rows = views.experiment_rows(df, name, grid=True)
        pd.testing.assert_frame_equal(rows, df[df["experiment"] == name])
        assert views.experiment_rows(df, name, grid=True) is rows  # computed once


def test_cached_views_equal_a_fresh_computation_on_a_copy(df: pd.DataFrame) -> None:
    """A copy of the table is another table: its values are computed afresh, and equal."""
    copy = df.copy()
    for name in ("fig2_activations", "fig3_tuned", "fig4_losses"):
        fresh = views.experiment_rows(copy, name)
        assert fresh is not views.experiment_rows(df, name)
        pd.testing.assert_frame_equal(fresh, views.experiment_rows(df, name))
        (mine, notes), (theirs, their_notes) = (views.curve_rows(d, name) for d in (df, copy))
        pd.testing.assert_frame_equal(mine, theirs)
        assert notes == their_notes
        assert views.missing_configs(df, name) == views.missing_configs(copy, name)
    grid = views.experiment_rows(df, "fig3_tuned", grid=True)
    pd.testing.assert_frame_equal(views.lr_choices(grid), views._lr_choices(grid))


def test_a_caller_changing_the_notes_changes_no_other_callers(df: pd.DataFrame) -> None:
    pin = {"activation": "relu"}
    _, notes = views.curve_rows(df, "fig4_losses", pin=pin)
    notes.append("changed")
    assert "changed" not in views.curve_rows(df, "fig4_losses", pin=pin)[1]


def test_replayed_looks_equal_every_look_evaluated_on_its_own() -> None:
    """Two experiments with different replicate counts: the looks past the smaller one's count
    reuse its verdicts; each still equals the verdicts of the table cut at that look."""
    small = make_results(experiments=["fig4_losses"], folds=5, epochs=4, seed=6)
    large = make_results(experiments=["fig2_activations"], folds=12, epochs=4, seed=7)
    df = views.prepare(pd.concat([small, large], ignore_index=True))
    specs = [
        ClaimSpec(key="bce", claim="c", where="w", kind="better", experiment="fig4_losses",
                  column="loss", levels=("bce",), than=("mse",)),
        ClaimSpec(key="tanh", claim="c", where="w", kind="better",
                  experiment="fig2_activations", column="activation", levels=("relu",),
                  than=("tanh",)),
    ]  # fmt: skip
    design = sequential.Design(batch=3, budget=12)
    looks = claims.history(df, specs, design)
    assert sorted(set(looks["replicates"])) == [3, 6, 9, 12]
    for n, group in looks.groupby("replicates"):
        alone = claims.verdicts_at(claims.at_most(df, n), specs, design)
        assert dict(zip(group["key"], group["verdict"], strict=True)) == alone


def test_figures_drawn_in_workers_are_the_bytes_drawn_here(df: pd.DataFrame, tmp_path: Path):
    entries = [e for e in figures.FIGURES if e[0] in ("fig2_activations", "fig4_losses")]
    here, there = tmp_path / "here", tmp_path / "there"
    with figures.drawing(df, here, entries, workers=1) as drawn:
        mine = drawn()
    with figures.drawing(df, there, entries, workers=2) as drawn:
        theirs = drawn()
    assert [f.caption for f in mine] == [f.caption for f in theirs]
    assert [f.notes for f in mine] == [f.notes for f in theirs]
    names = sorted(p.name for p in here.iterdir())
    assert names == sorted(p.name for p in there.iterdir()) and len(names) == 2 * len(entries)
    assert [n for n in names if (here / n).read_bytes() != (there / n).read_bytes()] == []


def test_rows_compared_as_their_text_would_be() -> None:
    """-0.0 and 0.0 differ as text, every NaN is one value, the text 'nan' is not a NaN, 1 and
    '1' in one object column are the same text."""
    frame = pd.DataFrame(
        {
            "float": [0.0, -0.0, np.nan, -np.nan, 1.0, 1.0, 0.0, math.inf],
            "int": pd.array([1, 1, None, None, 2, 2, 1, 3], dtype="Int64"),
            "str": pd.array(["a", "a", np.nan, np.nan, "nan", "nan", "a", "b"], dtype="str"),
            "object": pd.Series([1, "1", None, np.nan, "x", "x", 1, 2], dtype=object),
        }
    )
    for k in range(1, len(frame.columns) + 1):
        for columns in itertools.combinations(frame.columns, k):
            part = frame[list(columns)]
            for keep in ("first", False):
                expected = part.astype(str).duplicated(keep=keep)
                pd.testing.assert_series_equal(collect._as_text(part).duplicated(keep=keep),
                                               expected)  # fmt: skip
