"""Each claim line is decided from the data, with its uncertainty: it flips when the data flips,
it is inconclusive when the data cannot tell, and it is not evaluated without enough folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from report_data import make_results

from bench.report import claims, stats, views

SUPPORTED, CONTRADICTED = stats.SUPPORTED, stats.CONTRADICTED
INCONCLUSIVE, NOT_EVALUATED = stats.INCONCLUSIVE, stats.NOT_EVALUATED


def decided(**kwargs: object) -> dict[str, claims.Claim]:
    kwargs.setdefault("folds", 4)
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
        (
            "similar_accuracy",
            {"framework_offset": {"torch": -0.03}},
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


def test_claim_numbers_are_the_weakest_parts_paired_bootstrap_recomputed_independently() -> None:
    """The CI in the claim equals a fresh scipy.stats.bootstrap of the per-fold differences
    computed here straight from the table (pandas, not the report's helpers)."""
    from scipy.stats import bootstrap

    raw = make_results(experiments=["fig3_optimizers"], folds=6, epochs=5, seed=3)
    claim = {c.key: c for c in claims.evaluate_claims(views.prepare(raw))}["adaptive_beat_sgd"]
    last = raw[raw["epoch"] == 5].pivot_table(
        index="fold", columns="optimizer", values="test_error"
    )
    parts = {o: (last["sgd"] - last[o]).to_numpy(float) for o in ("adam", "rmsprop")}
    weakest = min(
        parts,
        key=lambda o: (
            bootstrap(
                (parts[o],), np.mean, rng=np.random.default_rng(stats.SEED), method="BCa"
            ).confidence_interval.low
        ),
    )
    expected = bootstrap(
        (parts[weakest],), np.mean, rng=np.random.default_rng(stats.SEED), method="BCa"
    ).confidence_interval
    assert claim.estimate == pytest.approx(parts[weakest].mean(), abs=1e-12)
    assert claim.ci_low == pytest.approx(expected.low, abs=1e-12)
    assert claim.ci_high == pytest.approx(expected.high, abs=1e-12)
    assert claim.n_folds == 6
    assert claim.p_better == pytest.approx(np.mean(parts[weakest] > 0))


def test_claim_line_states_rule_interval_and_folds() -> None:
    df = views.prepare(make_results(experiments=["fig2_activations"], folds=3, epochs=4))
    claim = next(c for c in claims.evaluate_claims(df) if c.key == "tanh_worst")
    line = claim.line()
    assert line.startswith(f"- **{claim.verdict}**: Tanh is the worst activation (Sec. III-B")
    assert "Rule: for each other activation" in line and "95% CI [" in line
    assert f"{claim.n_folds} folds" in line and "Tanh − ReLU" in line


def test_claims_frame_has_the_interval_columns(paper_like: dict[str, str]) -> None:
    df = views.prepare(make_results(folds=3, epochs=4))
    frame = claims.claims_frame(claims.evaluate_claims(df))
    assert isinstance(frame, pd.DataFrame)
    assert list(frame["key"]) == list(paper_like)
    for column in ("estimate", "ci_low", "ci_high", "n_folds", "p_better", "verdict"):
        assert column in frame.columns
    decided_rows = frame[frame["verdict"] != NOT_EVALUATED]
    assert (decided_rows["ci_low"] <= decided_rows["estimate"]).all()
    assert (decided_rows["estimate"] <= decided_rows["ci_high"]).all()
