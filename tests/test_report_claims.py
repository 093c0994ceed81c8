"""Each claim is decided from the data, with its uncertainty: it flips when the data flips, it is
inconclusive when the data cannot tell, and it is not evaluated without enough replicates. Its
rule text is generated from its specification, and its numbers are recomputed here from the
table with pandas."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from report_data import make_results

from bench.report import claims, stats, views

SUPPORTED, CONTRADICTED = stats.SUPPORTED, stats.CONTRADICTED
INCONCLUSIVE, NOT_EVALUATED = stats.INCONCLUSIVE, stats.NOT_EVALUATED


def decided(**kwargs: object) -> dict[str, claims.Claim]:
    kwargs.setdefault("folds", 30)
    kwargs.setdefault("epochs", 12)
    found = claims.evaluate_claims(views.prepare(make_results(**kwargs)))
    return {c.key: c for c in found}


def verdicts(**kwargs: object) -> dict[str, str]:
    return {key: c.verdict for key, c in decided(**kwargs).items()}


@pytest.fixture(scope="module")
def paper_like() -> dict[str, str]:
    return verdicts()


def test_paper_like_data_supports_the_paper(paper_like: dict[str, str]) -> None:
    expected = dict.fromkeys(paper_like, SUPPORTED)
    expected["torch_train_better"] = INCONCLUSIVE  # synthetic twins: identical accuracy, a tie
    assert paper_like == expected


@pytest.mark.parametrize(
    ("key", "kwargs", "verdict", "also"),
    [
        (
            "tanh_worst",
            {"final": {("fig2_activations", "relu"): 0.35}},
            CONTRADICTED,
            {"others_10"},
        ),
        ("tanh_22", {"final": {("fig2_activations", "tanh"): 0.32}}, CONTRADICTED, set()),
        (
            "others_10",
            {
                "final": {("fig2_activations", "elu"): 0.0},
                "rate": {("fig2_activations", "elu"): 1.0},
            },
            CONTRADICTED,
            set(),
        ),
        (
            "adaptive_beat_sgd",
            {"final": {("fig3_optimizers", "rmsprop"): 0.15}},
            CONTRADICTED,
            set(),
        ),
        ("adaptive_beat_sgd_tuned", {"final": {("fig3_tuned", "adam"): 0.15}}, CONTRADICTED, set()),
        (
            "bce_faster",
            {
                "final": {("fig4_losses", "bce"): 0.10, ("fig4_losses", "mse"): 0.06},
                "rate": {("fig4_losses", "bce"): 0.1, ("fig4_losses", "mse"): 0.6},
            },
            CONTRADICTED,
            set(),
        ),
        ("torch_faster", {"seconds_per_epoch": {"torch": 0.03}}, CONTRADICTED, set()),
        # a 3-point accuracy gap in torch's favour: also makes torch better on the train set
        # (the custom side 3 points worse: an error rate shifted below 0 is refused by the table
        # check, and near-0 train errors would clip)
        (
            "similar_accuracy",
            {"framework_offset": {"custom": 0.03}},
            CONTRADICTED,
            {"torch_train_better"},
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_claim_flips_when_the_data_flips(
    paper_like: dict[str, str], key: str, kwargs: dict, verdict: str, also: set[str]
) -> None:
    assert paper_like[key] == SUPPORTED
    flipped = verdicts(**kwargs)
    assert flipped[key] == verdict
    changed = {k for k, v in flipped.items() if v != paper_like[k]}
    assert changed == {key} | also


def test_torch_train_better_is_supported_by_a_consistent_gap() -> None:
    assert verdicts(framework_offset={"torch": -0.005})["torch_train_better"] == SUPPORTED


def test_a_four_way_tie_is_inconclusive_not_a_winner() -> None:
    """Was: four activations tied at 0.497 came out "highest: ReLU". Now: a tie is a tie."""
    tie = {("fig2_activations", a): 0.3 for a in views.LEVELS["activation"]}
    same = dict.fromkeys(tie, 0.5)
    v = decided(experiments=["fig2_activations"], final=tie, rate=same, folds=3)["tanh_worst"]
    assert v.verdict in (INCONCLUSIVE, CONTRADICTED) and "Tanh − ReLU" in v.data


def test_one_fold_decides_nothing_and_says_why() -> None:
    """Was: a report from one fold decided claims from that fold. Now: not evaluated, with the
    reason, for every claim."""
    one = decided(folds=1, epochs=4)
    assert {c.verdict for c in one.values()} == {NOT_EVALUATED}
    assert all("needs at least 2" in c.data for c in one.values())
    assert all(c.line().startswith("- **not evaluated**") for c in one.values())


@pytest.mark.parametrize(
    ("experiment", "keys"),
    [
        ("fig2_activations", ["tanh_worst", "tanh_22", "others_10"]),
        ("fig3_optimizers", ["adaptive_beat_sgd"]),
        ("fig3_tuned", ["adaptive_beat_sgd_tuned"]),
        ("fig4_losses", ["bce_faster"]),
        ("fig5_frameworks", ["torch_faster", "similar_accuracy", "torch_train_better"]),
        ("digits", ["similar_accuracy_digits"]),
    ],
)
def test_claim_not_evaluated_without_its_experiment(experiment: str, keys: list[str]) -> None:
    others = [e for e in views.EXPERIMENTS if e != experiment]
    v = verdicts(experiments=others, folds=3, epochs=4)
    assert {k: v[k] for k in keys} == dict.fromkeys(keys, NOT_EVALUATED)
    assert all(v[k] != NOT_EVALUATED for k in v if k not in keys)


def test_failed_configuration_makes_its_claim_not_evaluated() -> None:
    v = decided(failed=[("fig3_optimizers", "adam")], folds=3, epochs=4)["adaptive_beat_sgd"]
    assert v.verdict == NOT_EVALUATED and "Adam" in v.data


def test_claim_numbers_are_the_method_on_the_paired_differences_recomputed_from_the_table() -> None:
    """The claim's estimate, interval, share and power are the report's method applied to the
    per-replicate differences computed here straight from the table (pandas, not the report's
    helpers), at the weakest part."""
    raw = make_results(experiments=["fig3_optimizers"], folds=12, epochs=5, seed=3)
    claim = {c.key: c for c in claims.evaluate_claims(views.prepare(raw))}["adaptive_beat_sgd"]
    last = raw[raw["epoch"] == 5].pivot_table(
        index="fold", columns="optimizer", values="test_error"
    )
    parts = {o: (last["sgd"] - last[o]).to_numpy(float) for o in ("adam", "rmsprop")}
    calibrated = {o: stats.interval(d, calibration=stats.calibrate(d)) for o, d in parts.items()}
    weakest = min(parts, key=lambda o: calibrated[o].low)
    diffs = parts[weakest]
    expected = calibrated[weakest]
    assert claim.estimate == pytest.approx(diffs.mean(), abs=1e-12)
    assert (claim.ci_low, claim.ci_high) == (expected.low, expected.high)
    assert claim.n_folds == 12 and claim.method == stats.METHOD
    assert claim.p_better == pytest.approx(np.mean(diffs > 0) + 0.5 * np.mean(diffs == 0))
    assert claim.p_better_low <= claim.p_better <= claim.p_better_high
    assert claim.sd == pytest.approx(diffs.std(ddof=1))
    # power from the interval itself: the side facing 0 narrows as 1/√n
    half = expected.estimate - expected.low
    assert claim.half_width == pytest.approx(half)
    assert claim.replicates_needed == max(2, math.ceil(12 * (half / diffs.mean()) ** 2 - 1e-9))
    assert claim.coverage >= 0.94 and 0.85 <= claim.coverage_nominal <= 1.0


def test_single_run_claim_reads_the_prediction_interval_of_one_run() -> None:
    """ "Tanh gives about 22%": the paper's number against the 95% prediction interval of one
    run's final error, recomputed from the table; the mean's interval beside it."""
    raw = make_results(experiments=["fig2_activations"], folds=30, epochs=12)
    claim = {c.key: c for c in claims.evaluate_claims(views.prepare(raw))}["tanh_22"]
    runs = raw[(raw["epoch"] == 12) & (raw["activation"] == "tanh")]["test_error"].to_numpy(float)
    low, high = stats.prediction_interval(runs)
    low, high = max(low, 0.0), min(high, 1.0)  # an error rate's range
    assert (claim.pi_low, claim.pi_high) == pytest.approx((low, high), abs=1e-12)
    assert claim.estimate == pytest.approx(runs.mean(), abs=1e-12)
    assert claim.verdict == stats.single_run(runs, 0.22).verdict == SUPPORTED
    assert "one run in [" in claim.data and "prediction" in claim.rule
    assert math.isnan(claim.replicates_needed)  # more runs do not narrow one run's spread


def test_window_claim_averages_its_epochs_per_replicate() -> None:
    """ "BCE converges faster": per replicate, the test error averaged over epochs 1 to the last
    (the area under the curve from the end of the first epoch), MSE's minus BCE's."""
    raw = make_results(experiments=["fig4_losses"], folds=10, epochs=8)
    claim = {c.key: c for c in claims.evaluate_claims(views.prepare(raw))}["bce_faster"]
    window = raw[(raw["epoch"] >= 1) & (raw["epoch"] <= 8)]
    area = window.pivot_table(index="fold", columns="loss", values="test_error", aggfunc="mean")
    diffs = (area["mse"] - area["bce"]).to_numpy(float)
    assert claim.estimate == pytest.approx(diffs.mean(), abs=1e-12)
    assert "averaged over epochs 1 to the final one" in claim.rule


def test_pinned_claims_read_only_their_pinned_rows() -> None:
    """Table III's claims pin float32 and the sequential engine: the replicate table holds one
    row per replicate, not one per dtype × engine."""
    df = views.prepare(make_results(experiments=["fig5_frameworks"], folds=5, epochs=4))
    spec = next(s for s in claims.CLAIMS if s.key == "torch_faster")
    table = claims.replicate_table(df, spec)
    assert len(table) == 5 and list(table.columns) == ["custom", "torch"]
    assert "dtype float32, engine sequential" in claims.rule(spec)


@pytest.mark.parametrize("spec", claims.CLAIMS, ids=lambda s: s.key)
def test_rule_text_states_every_field_of_its_spec(spec: claims.ClaimSpec) -> None:
    """The text is generated from the fields: each one is in it, and changing one changes it."""
    text = claims.rule(spec)
    words, _ = claims.METRICS[spec.metric]
    assert f"`{spec.experiment}`" in text and words in text
    assert ("at the final epoch" in text) == (spec.window is None)
    for column, value in spec.pins:
        assert f"{views.COLUMN_TITLES[column].lower()} {views.label(value)}" in text
    for level in (*spec.levels, *spec.than):
        assert views.label(level) in text
    if spec.kind == "level":
        assert f"{spec.target:.0%}" in text and "prediction interval" in text
    else:
        assert stats.METHOD in text
    if spec.kind == "similar":
        assert f"±{spec.margin * 100:g} percentage point" in text and "TOST" in text
    if spec.per:
        assert f"for each {views.COLUMN_TITLES[spec.per].lower()}" in text
    changes = {
        "experiment": "moons",
        "metric": "train_error" if spec.metric != "train_error" else "test_error",
        "window": (2, 5),
        "pins": (("dtype", "float64"),),
    }
    for key, value in changes.items():
        assert claims.rule(dataclasses.replace(spec, **{key: value})) != text, key


def test_holm_keeps_strong_decisions_and_withholds_a_borderline_one() -> None:
    """Holm's step-down over every tested part: two parts supported at p = 0.015 and 0.02 each
    alone are no longer supported among four (adjusted: 2 × 0.015 = 0.03 > 0.025 for both, the
    step-down keeping the order); the strong ones stay."""

    def part(verdict: str, p: float, margin: float) -> claims.Part:
        value = stats.Interval(1.0, 0.5, 1.5, 30)
        return claims.Part("x", "better", verdict, value, np.ones(30), margin, p_value=p)

    measured = {
        "strong": [part(SUPPORTED, 0.0001, 1.0)],
        "borderline": [part(SUPPORTED, 0.02, 0.1), part(SUPPORTED, 0.015, 0.2)],
        "against": [part(CONTRADICTED, 0.001, -1.0)],
        "single": [claims.Part("y", "level", SUPPORTED, stats.Interval(1, 0, 2, 30),
                               np.ones(30), 0.5)],
    }  # fmt: skip
    holm = claims._holm(measured)
    assert holm["strong"][0] == SUPPORTED and holm["against"][0] == CONTRADICTED
    assert holm["borderline"] == (INCONCLUSIVE, pytest.approx(0.03))  # its weakest part's p
    assert holm["single"][0] == SUPPORTED  # a single-run check is not a test of a mean


def test_claims_sharing_replicates_are_named(paper_like: dict[str, str]) -> None:
    found = decided(folds=3, epochs=4)
    assert set(found["tanh_worst"].shares_replicates_with.split(", ")) == {"tanh_22", "others_10"}
    assert found["adaptive_beat_sgd"].shares_replicates_with == ""
    assert "similar_accuracy" in found["torch_faster"].shares_replicates_with


def test_claim_line_states_rule_interval_and_replicates() -> None:
    df = views.prepare(make_results(experiments=["fig2_activations"], folds=6, epochs=4))
    claim = next(c for c in claims.evaluate_claims(df) if c.key == "tanh_worst")
    line = claim.line()
    assert line.startswith(f"- **{claim.verdict}**: Tanh is the worst activation (Sec. III-B")
    assert "Rule: `fig2_activations`, test error at the final epoch: per replicate, Tanh minus" in (
        line
    )
    assert f"{claim.n_folds} replicates" in line and "Tanh − ReLU" in line


def test_claims_frame_has_the_interval_columns(paper_like: dict[str, str]) -> None:
    df = views.prepare(make_results(folds=3, epochs=4))
    frame = claims.claims_frame(claims.evaluate_claims(df))
    assert isinstance(frame, pd.DataFrame)
    assert list(frame["key"]) == list(paper_like)
    for column in ("estimate", "ci_low", "ci_high", "n_folds", "method", "coverage", "p_better",
                   "p_better_low", "p_better_high", "verdict", "verdict_holm", "p_holm",
                   "half_width", "replicates_needed", "shares_replicates_with"):  # fmt: skip
        assert column in frame.columns
    decided_rows = frame[frame["verdict"] != NOT_EVALUATED]
    assert (decided_rows["ci_low"] <= decided_rows["estimate"]).all()
    assert (decided_rows["estimate"] <= decided_rows["ci_high"]).all()
