"""Each claim line is decided from the data: it flips when the data flips."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from report_data import make_results

from bench.report import claims, views

SUPPORTED, NOT_SUPPORTED = claims.SUPPORTED, claims.NOT_SUPPORTED
NOT_EVALUATED = f"{claims.NOT_EVALUATED} (data missing)"
TANH_WORST = next(spec for spec in claims.CLAIMS if spec.key == "tanh_worst")


def verdicts(**kwargs: object) -> dict[str, str]:
    kwargs.setdefault("folds", 3)
    kwargs.setdefault("epochs", 8)
    return {c.key: c.status for c in claims.evaluate_claims(views.prepare(make_results(**kwargs)))}


@pytest.fixture(scope="module")
def paper_like() -> dict[str, str]:
    return verdicts()


def test_paper_like_data_supports_the_paper(paper_like: dict[str, str]) -> None:
    expected = {key: SUPPORTED for key in paper_like}
    expected["torch_train_better"] = NOT_SUPPORTED  # synthetic twins: identical accuracy
    assert paper_like == expected


@pytest.mark.parametrize(
    ("key", "kwargs", "also"),
    [
        ("tanh_worst", {"final": {("fig2_activations", "relu"): 0.30}}, {"others_10"}),
        ("tanh_22", {"final": {("fig2_activations", "tanh"): 0.30}}, set()),
        (
            "others_10",
            {
                "final": {("fig2_activations", "elu"): 0.0},
                "rate": {("fig2_activations", "elu"): 1.0},
            },
            set(),
        ),
        ("adaptive_beat_sgd", {"final": {("fig3_optimizers", "rmsprop"): 0.15}}, set()),
        (
            "bce_faster",
            {
                "final": {("fig4_losses", "bce"): 0.10, ("fig4_losses", "mse"): 0.06},
                "rate": {("fig4_losses", "bce"): 0.1, ("fig4_losses", "mse"): 0.6},
            },
            set(),
        ),
        ("torch_faster", {"seconds_per_epoch": {"torch": 0.03}}, set()),
        # a 3-point accuracy gap in torch's favour: also makes torch better on the train set
        ("similar_accuracy", {"framework_offset": {"torch": -0.03}}, {"torch_train_better"}),
    ],
)
def test_claim_flips_when_the_data_flips(
    paper_like: dict[str, str], key: str, kwargs: dict[str, object], also: set[str]
) -> None:
    assert paper_like[key] == SUPPORTED
    flipped = verdicts(**kwargs)
    assert flipped[key] == NOT_SUPPORTED
    changed = {k for k, v in flipped.items() if v != paper_like[k]}
    assert changed == {key} | also


def test_torch_train_better_flips_too() -> None:
    assert verdicts(framework_offset={"torch": -0.005})["torch_train_better"] == SUPPORTED


@pytest.mark.parametrize(
    ("experiment", "keys"),
    [
        ("fig2_activations", ["tanh_worst", "tanh_22", "others_10"]),
        ("fig3_optimizers", ["adaptive_beat_sgd"]),
        ("fig4_losses", ["bce_faster"]),
        ("fig5_frameworks", ["torch_faster", "similar_accuracy", "torch_train_better"]),
    ],
)
def test_claim_not_evaluated_without_its_experiment(experiment: str, keys: list[str]) -> None:
    others = [e for e in ("fig2_activations", "fig3_optimizers", "fig4_losses",
                          "fig5_frameworks") if e != experiment]  # fmt: skip
    v = verdicts(experiments=others, folds=2, epochs=3)
    assert {k: v[k] for k in keys} == dict.fromkeys(keys, NOT_EVALUATED)
    assert all(v[k] != NOT_EVALUATED for k in v if k not in keys)


def test_failed_configuration_makes_its_claim_not_evaluated() -> None:
    v = verdicts(failed=[("fig3_optimizers", "adam")], folds=2, epochs=3)
    assert v["adaptive_beat_sgd"] == NOT_EVALUATED


def test_claim_line_states_rule_and_numbers() -> None:
    df = views.prepare(make_results(experiments=["fig2_activations"], folds=2, epochs=3))
    line = next(c for c in claims.evaluate_claims(df) if c.key == "tanh_worst").line()
    assert line.startswith("- **supported**: Tanh is the worst activation (Sec. III-B, Fig. 2).")
    assert "Rule: Tanh's final mean test error is the highest of the four activations." in line
    final = df[df["epoch"] == 3].groupby("activation")["test_error"].mean()
    assert f"Tanh {final['tanh']:.3f}" in line and f"ReLU {final['relu']:.3f}" in line


@settings(max_examples=15, deadline=None)
@given(errors=st.lists(st.floats(0.01, 0.45), min_size=4, max_size=4))
def test_tanh_worst_matches_an_independent_argmax(errors: list[float]) -> None:
    levels = ["relu", "tanh", "leaky_relu", "elu"]
    final = {("fig2_activations", a): e for a, e in zip(levels, errors, strict=True)}
    raw = make_results(experiments=["fig2_activations"], folds=2, epochs=2, final=final)
    last = raw[raw["epoch"] == 2].groupby("activation")["test_error"].mean()
    expected = SUPPORTED if last.idxmax() == "tanh" else NOT_SUPPORTED
    status, _ = TANH_WORST.decide(views.prepare(raw))
    assert status == expected


def test_claims_frame_has_one_row_per_claim(paper_like: dict[str, str]) -> None:
    df = views.prepare(make_results(folds=2, epochs=3))
    frame = claims.claims_frame(claims.evaluate_claims(df))
    assert isinstance(frame, pd.DataFrame)
    assert list(frame["key"]) == list(paper_like)
