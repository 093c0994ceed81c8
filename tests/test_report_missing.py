"""Missing or partial results give a report that says what is missing: no crash, no blank figure."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from report_data import make_results

from bench.report import build, claims, figures, stats, views

STEMS = [stem for _, stem, _, _ in figures.FIGURES]


@pytest.fixture(scope="module")
def partial(tmp_path_factory: pytest.TempPathFactory) -> tuple[build.Report, str]:
    """fig4 and initializers never ran, ELU failed, one Adam fold diverged, torch float64 is
    missing from fig5, and an experiment the report does not know is present."""
    df = make_results(
        folds=3,
        epochs=10,
        experiments=["fig2_activations", "fig3_optimizers", "fig5_frameworks"],
        failed=[("fig2_activations", "elu")],
        diverged=[("fig3_optimizers", "adam", 1)],
        extra_experiment="lr_sweep",
    )
    df = df[~((df["framework"] == "torch") & (df["dtype"] == "float64"))]
    out = tmp_path_factory.mktemp("partial")
    built = build.build_report(df, out)
    return built, (out / "README.md").read_text()


def test_every_figure_file_still_written(partial: tuple[build.Report, str]) -> None:
    built, _ = partial
    out = built.files[0].parent
    for stem in STEMS:
        assert (out / f"{stem}.png").stat().st_size > 0
        assert (out / f"{stem}.svg").stat().st_size > 0


def test_figures_without_data_are_marked_not_drawn(partial: tuple[build.Report, str]) -> None:
    built, text = partial
    drawn = {f.stem: f.available for f in built.figures}
    assert drawn == {
        "fig2_activations": True,
        "fig3_optimizers": True,
        "fig4_losses": False,
        "fig5_frameworks": True,
        "fig_initializers": False,
        "fig3_tuned": False,
        "fig_lr_sensitivity": False,
        "fig_variance": False,
        "fig6_digits": False,
        "fig_moons": False,
    }
    assert "**Not drawn: no results for experiment 'fig4_losses'.**" in text
    assert "**Not drawn: no results for experiment 'initializers'.**" in text


def test_partial_figures_name_what_is_missing(partial: tuple[build.Report, str]) -> None:
    built, _ = partial
    notes = {f.stem: " ".join(f.notes) for f in built.figures}
    assert "job failed: ELU" in notes["fig2_activations"]
    assert "Adam: 1 of 3 folds diverged" in notes["fig3_optimizers"]
    assert "not run: PyTorch (torch.nn), float64" in notes["fig5_frameworks"]


def test_readme_lists_missing_failed_diverged_and_unknown(
    partial: tuple[build.Report, str],
) -> None:
    _, text = partial
    section = text[text.index("## Missing or partial results") : text.index("## The paper")]
    for expected in (
        "`fig4_losses` (Figure 4, loss functions): not in the results (not run).",
        "`initializers` (Initializer figure, weight initializers): not in the results",
        "failed job `fig2_activations` activation=elu: `RuntimeError: synthetic failure",
        "`fig3_optimizers`: Adam: 1 of 3 folds diverged.",
        "`fig5_frameworks`: PyTorch (torch.nn), float64, sequential: not run.",
        "`lr_sweep`: not an experiment this report knows",
    ):
        assert expected in section


def test_claims_that_need_missing_data_are_not_evaluated(
    partial: tuple[build.Report, str],
) -> None:
    built, text = partial
    status = {c.key: c.status for c in built.claims}
    missing = stats.NOT_EVALUATED
    assert status["tanh_worst"] == missing  # ELU failed
    assert status["others_10"] == missing
    assert status["bce_faster"] == missing  # fig4 never ran
    assert status["tanh_22"] != missing  # needs Tanh only (3 runs: too few to decide)
    assert status["adaptive_beat_sgd"] == stats.SUPPORTED  # the 2 finished Adam folds
    assert status["torch_faster"] == stats.SUPPORTED  # float32 of both frameworks is there
    assert "no finished replicate in fig2_activations for ELU" in text


def test_summary_keeps_failed_and_never_run_configurations(
    partial: tuple[build.Report, str],
) -> None:
    built, _ = partial
    s = built.tables.summary
    elu = s[(s["experiment"] == "fig2_activations") & (s["activation"] == "elu")].iloc[0]
    assert (elu["n_failed_jobs"], elu["n_final"]) == (1, 0)
    adam = s[(s["experiment"] == "fig3_optimizers") & (s["optimizer"] == "adam")].iloc[0]
    assert (adam["n_folds"], adam["n_final"], adam["n_diverged"]) == (3, 2, 1)
    f5 = s[s["experiment"] == "fig5_frameworks"]
    torch64 = f5[(f5["framework"] == "torch") & (f5["dtype"] == "float64")].iloc[0]
    assert torch64["n_folds"] == 0 and pd.isna(torch64["test_error_mean"])
    assert "Not in the results." in built.tables.summary_md  # fig4, initializers


def test_table3_with_one_framework_missing(tmp_path: Path) -> None:
    df = make_results(folds=2, epochs=4, experiments=["fig5_frameworks"])
    df = df[df["framework"] == "custom"]
    built = build.build_report(df, tmp_path)
    t = built.tables.table3
    torch_row = t[(t["framework"] == "torch") & (t["source"] == "this run")].iloc[0]
    assert torch_row["n_folds"] == 0 and pd.isna(torch_row["test_acc_mean"])
    assert "| PyTorch (torch.nn) | this run" in built.tables.table3_md
    assert "Not available: needs both frameworks" in built.tables.equivalence_md
    status = {c.key: c.status for c in built.claims}
    assert status["torch_faster"].startswith(claims.NOT_EVALUATED)


def test_empty_results_build_a_report_of_what_is_missing(tmp_path: Path) -> None:
    df = make_results(folds=1, epochs=1).iloc[0:0]
    built = build.build_report(df, tmp_path)
    assert not any(f.available for f in built.figures)
    assert all(c.status.startswith(claims.NOT_EVALUATED) for c in built.claims)
    text = (tmp_path / "README.md").read_text()
    assert text.count("not in the results (not run)") == len(views.EXPERIMENTS)


def test_required_column_missing_is_a_clear_error() -> None:
    df = make_results(folds=1, epochs=1, experiments=["fig4_losses"]).drop(columns=["epoch"])
    with pytest.raises(ValueError, match=r"required column.*epoch"):
        views.prepare(df)


def test_optional_columns_may_be_absent(tmp_path: Path) -> None:
    """Only the report's required columns: dtype, status, provenance and job are filled in."""
    keep = [*views.REQUIRED_COLUMNS, "seed"]
    df = make_results(folds=2, epochs=3, experiments=["fig4_losses"])[keep]
    built = build.build_report(df, tmp_path)
    assert {f.stem: f.available for f in built.figures}["fig4_losses"]
    assert "| git commit | not recorded |" in (tmp_path / "README.md").read_text()
