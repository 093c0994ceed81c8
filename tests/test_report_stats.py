"""The statistics on synthetic data whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from bench.report import stats


def paired_verdict(a: np.ndarray, b: np.ndarray) -> str:
    return stats.greater_than(stats.interval(a - b))


def test_two_settings_from_one_distribution_are_inconclusive_about_95_percent_of_draws():
    """Paired per-fold differences of two settings with no true difference (fold effects shared,
    as the protocol shares each fold's draws): at the 95% level the interval should contain 0
    in about 95% of experiments. 400 simulated experiments of 30 folds."""
    rng = np.random.default_rng(7)
    outcomes = []
    for _ in range(400):
        fold_effect = rng.normal(0.1, 0.03, 30)
        a = fold_effect + rng.normal(0, 0.01, 30)
        b = fold_effect + rng.normal(0, 0.01, 30)
        outcomes.append(paired_verdict(a, b))
    inconclusive = outcomes.count(stats.INCONCLUSIVE) / len(outcomes)
    assert 0.90 <= inconclusive <= 0.985, inconclusive
    # the errors split between the two sides (no bias toward one setting)
    assert abs(outcomes.count(stats.SUPPORTED) - outcomes.count(stats.CONTRADICTED)) <= 12


@pytest.mark.parametrize("folds", [5, 10, 30])
def test_a_clear_shift_is_supported_and_its_reverse_contradicted(folds):
    rng = np.random.default_rng(folds)
    fold_effect = rng.normal(0.1, 0.03, folds)
    better = fold_effect + rng.normal(0, 0.005, folds)
    worse = better + 0.03 + rng.normal(0, 0.005, folds)
    assert paired_verdict(worse, better) == stats.SUPPORTED
    assert paired_verdict(better, worse) == stats.CONTRADICTED


def test_pairing_matters_a_shift_hidden_by_fold_spread_is_found_paired():
    """Unpaired, the fold-to-fold spread (sd 0.05) hides a 0.01 shift; paired, it does not."""
    rng = np.random.default_rng(1)
    fold_effect = rng.normal(0.2, 0.05, 10)
    a = fold_effect + 0.01 + rng.normal(0, 0.001, 10)
    b = fold_effect + rng.normal(0, 0.001, 10)
    unpaired = stats.interval(
        (a, b), lambda x, y, axis: x.mean(axis=axis) - y.mean(axis=axis), paired=False
    )
    assert stats.greater_than(unpaired) == stats.INCONCLUSIVE
    assert paired_verdict(a, b) == stats.SUPPORTED


def test_interval_equals_scipy_bootstrap_recomputed():
    from scipy.stats import bootstrap

    values = np.random.default_rng(3).normal(0.05, 0.02, 12)
    ours = stats.interval(values)
    theirs = bootstrap(
        (values,), np.mean, n_resamples=9999, rng=np.random.default_rng(stats.SEED), method="BCa"
    ).confidence_interval
    assert ours.estimate == pytest.approx(values.mean(), abs=1e-15)
    assert (ours.low, ours.high) == pytest.approx((theirs.low, theirs.high), abs=1e-15)
    assert ours.n == 12


def test_equal_values_give_a_point_interval_and_a_tie_is_inconclusive():
    tie = stats.interval(np.zeros(8))
    assert (tie.low, tie.estimate, tie.high) == (0.0, 0.0, 0.0)
    assert stats.greater_than(tie) == stats.INCONCLUSIVE


def test_fewer_than_two_folds_is_not_evaluated():
    one = stats.interval(np.array([0.3]))
    assert one.n == 1 and np.isnan(one.low)
    assert stats.greater_than(one) == stats.NOT_EVALUATED
    assert stats.within(one, 0.2, 0.4) == stats.NOT_EVALUATED


@pytest.mark.parametrize(
    ("center", "verdict"),
    [(0.22, stats.SUPPORTED), (0.40, stats.CONTRADICTED), (0.27, stats.INCONCLUSIVE)],
)
def test_within_a_band(center, verdict):
    values = np.random.default_rng(0).normal(center, 0.01, 20)
    assert stats.within(stats.interval(values), 0.17, 0.27) == verdict


def test_combined_parts_need_every_part():
    s, c, i, n = stats.SUPPORTED, stats.CONTRADICTED, stats.INCONCLUSIVE, stats.NOT_EVALUATED
    assert stats.combine([s, s]) == s
    assert stats.combine([s, i]) == i
    assert stats.combine([s, c, i]) == c
    assert stats.combine([s, n]) == n
