"""Studies as data: both shipped studies load, and every bad field of a claim is refused
before anything runs, with one line naming the file, the field and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bench import study
from bench.harness import catalog
from bench.report import claims


def test_every_shipped_study_loads_and_the_papers_claims_are_its_ten() -> None:
    assert set(study.names()) >= {"paper", "example"}
    paper = study.load("paper")
    assert [c.key for c in paper.claims] == [c.key for c in claims.CLAIMS]
    assert len(paper.claims) == 10 and paper.replicates == 30
    example = study.load("example")
    assert example.adaptive and example.experiments == ("moons",)


def _write(tmp_path: Path, change) -> Path:
    data = yaml.safe_load((study.STUDY_DIR / "example.yaml").read_text())
    change(data)
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _claim(**fields):
    def change(data: dict) -> None:
        data["claims"][0].update(fields)

    return change


BAD = {
    "unknown_experiment": (
        _claim(experiment="fig9"),
        "claims[0] (gelu_beats_relu).experiment",
        "allowed: moons",
    ),
    "experiment_not_in_the_study": (
        _claim(experiment="fig2_activations"),
        ".experiment",
        "allowed: moons",
    ),
    "unknown_column": (
        _claim(column="loss"),
        ".column",
        "allowed: framework, activation, optimizer",
    ),
    "unknown_level": (_claim(levels=["tanh"]), ".levels", "allowed: relu, gelu"),
    "unknown_than_level": (_claim(than=["elu"]), ".than", "allowed: relu, gelu"),
    "unknown_kind": (_claim(kind="worse"), ".kind", "allowed: better, level, similar"),
    "unknown_metric": (_claim(metric="accuracy"), ".metric", "allowed: test_error"),
    "zero_margin": (
        _claim(kind="similar", levels=["gelu", "relu"], than=[], margin=0),
        ".margin",
        "must be a finite number > 0",
    ),
    "negative_margin": (
        _claim(kind="similar", levels=["gelu", "relu"], than=[], margin=-0.1),
        ".margin",
        "> 0",
    ),
    "similar_without_margin": (
        _claim(kind="similar", levels=["gelu", "relu"], than=[]),
        ".margin",
        "needs a margin > 0",
    ),
    "level_without_target": (_claim(kind="level", than=[]), ".target", "needs the number"),
    "error_target_above_one": (
        _claim(kind="level", than=[], target=22),
        ".target",
        "a fraction in [0, 1]",
    ),
    "bad_pin_value": (_claim(pins={"optimizer": "sgd"}), ".pins.optimizer", "allowed: adam, adamw"),
    "pin_of_an_unknown_column": (_claim(pins={"colour": "red"}), ".pins", "allowed: framework"),
    "bad_window": (_claim(window=[5, 2]), ".window", "0 ≤ first ≤ last"),
    "unknown_key": (
        _claim(margni=0.1),
        "claims[0] (gelu_beats_relu).margni",
        "unknown field; allowed: key, claim",
    ),
    "wrong_type": (
        _claim(margin="wide"),
        "claims[0] (gelu_beats_relu).margin",
        "could not be converted",
    ),
    "missing_field": (
        lambda d: d["claims"][0].pop("column"),
        "claims[0] (gelu_beats_relu).column",
        "Missing mandatory value",
    ),
    "duplicate_key": (
        lambda d: d["claims"][1].update(key="gelu_beats_relu"),
        "claims",
        "used twice",
    ),
    "unknown_experiment_in_the_list": (
        lambda d: d.update(experiments=["moons", "nope"]),
        "experiments[1]",
        "allowed: digits",
    ),
    "bad_replicates": (
        lambda d: d.update(replicates="many"),
        "replicates",
        "auto, or an integer ≥ 2",
    ),
}


@pytest.mark.parametrize("fault", BAD)
def test_a_claim_with_a_bad_field_is_refused_naming_the_file_and_the_field(
    tmp_path: Path, fault: str
) -> None:
    change, field, allowed = BAD[fault]
    path = _write(tmp_path, change)
    with pytest.raises(study.StudyError) as error:
        study.load(str(path))
    message = str(error.value)
    assert message.startswith(str(path)), message
    assert field in message and allowed in message, message
    assert "\n" not in message


def test_the_cli_refuses_a_bad_study_in_one_line_before_running_anything(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = _write(tmp_path, _claim(levels=["tanh"]))
    runs = tmp_path / "runs"
    out = subprocess.run(
        [sys.executable, "-m", "bench.study", str(path), "--runs", str(runs)],
        capture_output=True, text=True, cwd=catalog.CONF_DIR.parents[1], check=False,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "levels" in out.stderr, out.stderr
    assert not runs.exists()


def test_an_unknown_study_names_the_ones_there_are() -> None:
    with pytest.raises(study.StudyError, match=r"the studies are .*example.*paper"):
        study.load("nope")


def test_rule_text_of_a_mean_level_claim_states_its_band() -> None:
    spec = study.ClaimSpec(
        key="k", claim="c", where="w", kind="level", experiment="moons", column="activation",
        levels=("gelu",), target=0.1, margin=0.02, of="mean",
    )  # fmt: skip
    text = claims.rule(spec)
    assert "10%" in text and "±2 percentage points" in text and "[0.08, 0.12]" in text
