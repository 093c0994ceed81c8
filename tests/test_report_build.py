"""The report builds from a small synthetic results DataFrame: every file, byte-identical twice."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from report_data import make_results

from bench.report import build, claims, figures, views

STEMS = [stem for _, stem, _, _ in figures.FIGURES]
TABLE_FILES = [
    "table3.md",
    "table3.csv",
    "table3.tex",
    "summary.md",
    "summary.csv",
    "equivalence.md",
    "equivalence.csv",
    "claims.csv",
    "README.md",
]
SPEED_SUMMARY = "| benchmark | custom / torch |\n|:--|--:|\n| step, batch 100 | 1.31 |\n"


def _with_speed_benchmark(out: Path) -> Path:
    """An output directory where the separate speed benchmark already wrote its files."""
    (out / "benchmarks").mkdir(parents=True)
    (out / "benchmarks" / "summary.md").write_text(SPEED_SUMMARY)
    (out / "benchmarks" / "ratio.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return out


@pytest.fixture(scope="module")
def results() -> pd.DataFrame:
    return make_results(folds=3, epochs=12)


@pytest.fixture(scope="module")
def built(results: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> build.Report:
    out = _with_speed_benchmark(tmp_path_factory.mktemp("report"))
    return build.build_report(results, out)


@pytest.fixture(scope="module")
def out_dir(built: build.Report) -> Path:
    return built.files[0].parent


@pytest.mark.parametrize("stem", STEMS)
def test_figure_written_as_png_and_svg(out_dir: Path, stem: str) -> None:
    png, svg = out_dir / f"{stem}.png", out_dir / f"{stem}.svg"
    assert png.read_bytes().startswith(b"\x89PNG"), png
    assert png.stat().st_size > 10_000, "a drawn figure, not an empty canvas"
    text = svg.read_text()
    assert text.startswith("<?xml") and "<svg" in text


def test_every_figure_drawn_from_complete_results(built: build.Report) -> None:
    assert [f.stem for f in built.figures] == STEMS
    assert all(f.available and not f.notes for f in built.figures)


@pytest.mark.parametrize("name", TABLE_FILES)
def test_table_and_readme_files_written(out_dir: Path, name: str) -> None:
    assert (out_dir / name).stat().st_size > 0


def test_figures_carry_no_date_and_no_version(out_dir: Path) -> None:
    for stem in STEMS:
        svg = (out_dir / f"{stem}.svg").read_text()
        assert "<dc:date>" not in svg
        assert "Matplotlib v" not in svg
        assert b"Software" not in (out_dir / f"{stem}.png").read_bytes()


def test_readme_embeds_figures_tables_claims_and_provenance(
    out_dir: Path, built: build.Report
) -> None:
    text = (out_dir / "README.md").read_text()
    for stem in STEMS:
        assert f"]({stem}.png)" in text
        assert f"]({stem}.svg)" in text
    assert built.tables.table3_md in text
    assert "## Final errors per experiment" in text
    for claim in built.claims:
        assert claim.line() in text
    for value in ("abc1234", "2.13.0+cpu", "3.12.3", "| threads (torch.set_num_threads) | 1 |"):
        assert value in text
    assert "Nothing missing" in text


def test_readme_includes_speed_benchmark_verbatim(out_dir: Path) -> None:
    text = (out_dir / "README.md").read_text()
    section = text[text.index("## Speed (pytest-benchmark)") :]
    assert SPEED_SUMMARY.strip() in section
    assert "](benchmarks/ratio.png)" in section


def test_no_speed_section_without_the_benchmark(tmp_path: Path) -> None:
    assert build.speed_section(tmp_path) is None


def test_cli_rebuild_from_parquet_is_byte_identical(
    results: pd.DataFrame, out_dir: Path, tmp_path: Path
) -> None:
    """A second build (through the CLI, from the Parquet file) writes the very same bytes."""
    parquet = tmp_path / "results.parquet"
    results.to_parquet(parquet, index=False)
    again = _with_speed_benchmark(tmp_path / "again")
    assert build.main(["--results", str(parquet), "--out", str(again)]) == 0
    first = sorted(p.relative_to(out_dir) for p in out_dir.rglob("*") if p.is_file())
    second = sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert first == second
    different = [p for p in first if (out_dir / p).read_bytes() != (again / p).read_bytes()]
    assert different == []


def test_cli_missing_results_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = build.main(["--results", str(tmp_path / "nope.parquet"), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "results file not found" in err and "nope.parquet" in err
    assert list(tmp_path.iterdir()) == []


def test_cli_results_without_required_column_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "results.csv"
    make_results(experiments=["fig4_losses"], folds=1, epochs=2).drop(columns="test_error").to_csv(
        csv, index=False
    )
    assert build.main(["--results", str(csv), "--out", str(tmp_path / "out")]) == 2
    assert "test_error" in capsys.readouterr().err


def test_claims_csv_matches_claims(out_dir: Path, built: build.Report) -> None:
    frame = pd.read_csv(out_dir / "claims.csv")
    assert list(frame["key"]) == [c.key for c in claims.CLAIMS]
    assert list(frame["verdict"]) == [c.verdict for c in built.claims]


def test_figures_module_is_headless() -> None:
    import matplotlib

    assert matplotlib.get_backend().lower() == "agg"


@pytest.mark.parametrize("name", ["fig4_losses", "digits", "fig3_optimizers"])
def test_an_experiment_without_a_drawer_of_its_own_gets_the_generic_figure(
    results: pd.DataFrame, tmp_path: Path, name: str
) -> None:
    """A new experiment (a YAML file, no report code) is drawn by `_draw_experiment`: one curve
    per configuration it sweeps, a panel per framework when its jobs train both."""
    df = views.prepare(results)
    entry = (name, f"generic_{name}", f"Figure of {name}", figures._draw_experiment(name))
    drawn = figures.build_figure(df, entry, tmp_path)
    assert drawn.available, drawn.caption
    assert [p.name for p in drawn.files] == [f"generic_{name}.png", f"generic_{name}.svg"]
    assert all(p.stat().st_size > 10_000 for p in drawn.files)
    assert views.EXPERIMENTS[name].what in drawn.caption
    both = "framework" in views.EXPERIMENTS[name].swept
    assert ("Custom framework and PyTorch" in drawn.caption) == both


def test_moons_added_as_a_yaml_file_is_in_the_report_with_no_report_code(
    built: build.Report, out_dir: Path
) -> None:
    """`moons` is an experiment file and registry entries only: the report draws its figure,
    lists its configurations in the summary and its section in the README."""
    (moons,) = [f for f in built.figures if f.stem == "fig_moons"]
    assert moons.available and "for each activation × optimizer" in moons.caption
    assert "two moons" in moons.caption  # the experiment file's own description
    summary = built.tables.summary
    rows = summary[summary["experiment"] == "moons"]
    assert {(r.activation, r.optimizer) for r in rows.itertuples()} == {
        (a, o) for a in ("relu", "gelu") for o in ("adam", "adamw")
    }
    assert (rows["n_final"] > 0).all()
    readme = (out_dir / "README.md").read_text()
    assert "![moons](fig_moons.png)" in readme and "### moons" in readme
