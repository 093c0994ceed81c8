"""The statistics on synthetic data whose answer is known, and against hand computations.

The coverage measurements on the project's own shapes are in test_report_calibration.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

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


def by_hand(values: np.ndarray) -> tuple[list[float], float, float]:
    """The bootstrap-t statistics of ``values`` computed one resample at a time from the
    resample indices `stats.design` is documented to draw, and the sample's mean and s/√n."""
    n = len(values)
    index = np.random.default_rng(stats.SEED).integers(0, n, (stats.N_RESAMPLES, n))
    mean, se = values.mean(), values.std(ddof=1) / math.sqrt(n)
    t = [(values[i].mean() - mean) / (values[i].std(ddof=1) / math.sqrt(n)) for i in index]
    return sorted(t), mean, se


def test_interval_of_the_mean_recomputed_independently_n12():
    """`stats.interval` of a mean = the hull of the studentized bootstrap interval (order
    statistics 250 and 9750 of 9,999 T*, recomputed here resample by resample) and scipy's
    t-interval."""
    values = np.random.default_rng(3).lognormal(-3, 0.6, 12)
    t, mean, se = by_hand(values)
    boot = (mean - t[9749] * se, mean - t[249] * se)
    student = sps.t.interval(0.95, 11, loc=mean, scale=se)
    ours = stats.interval(values)
    assert ours.estimate == pytest.approx(mean, abs=1e-15)
    assert ours.low == pytest.approx(min(boot[0], student[0]), abs=1e-12)
    assert ours.high == pytest.approx(max(boot[1], student[1]), abs=1e-12)
    assert ours.n == 12
    # right-skewed data: the bootstrap-t widens the upper end past the t-interval's
    assert boot[1] > student[1]
    assert stats.interval(values) == ours  # seeded: the same on every call


@pytest.mark.parametrize("n", [2, 3, 4])
def test_below_five_values_the_interval_is_the_t_interval(n):
    """n < MIN_BOOTSTRAP: scipy's t-interval, and the p-value its one-sided t-test's."""
    values = np.random.default_rng(n).lognormal(-3, 0.6, n)
    ours = stats.interval(values)
    theirs = sps.t.interval(0.95, n - 1, loc=values.mean(), scale=sps.sem(values))
    assert (ours.low, ours.high) == pytest.approx(theirs, abs=1e-15)
    p = sps.ttest_1samp(values, 0.01, alternative="greater").pvalue
    assert stats.above(values, 0.01).p_value == pytest.approx(p, abs=1e-15)


def test_from_five_values_the_bootstrap_t_widens_a_skewed_interval():
    values = np.array([0.01, 0.012, 0.013, 0.015, 0.09])
    ours = stats.interval(values)
    student = sps.t.interval(0.95, 4, loc=values.mean(), scale=sps.sem(values))
    assert ours.low == pytest.approx(student[0]) and ours.high > student[1] + 0.01


def test_general_statistics_keep_scipys_bca():
    """A statistic other than the mean goes through ``scipy.stats.bootstrap`` BCa, seeded."""

    def var(x, axis=-1):
        return np.var(x, ddof=1, axis=axis)

    values = np.random.default_rng(3).normal(0.05, 0.02, 12)
    ours = stats.interval(values, var)
    theirs = sps.bootstrap(
        (values,), var, n_resamples=9999, rng=np.random.default_rng(stats.SEED), method="BCa"
    ).confidence_interval
    assert (ours.low, ours.high) == pytest.approx((theirs.low, theirs.high), abs=1e-15)
    assert stats.bootstrap_interval(values, var) == ours


def test_equal_values_give_a_point_interval_and_a_tie_is_inconclusive():
    tie = stats.interval(np.zeros(8))
    assert (tie.low, tie.estimate, tie.high) == (0.0, 0.0, 0.0)
    assert stats.greater_than(tie) == stats.INCONCLUSIVE
    assert stats.above(np.zeros(8)).p_value == 1.0
    assert stats.above(np.full(8, 0.1)).verdict == stats.SUPPORTED


def test_fewer_than_two_folds_is_not_evaluated():
    one = stats.interval(np.array([0.3]))
    assert one.n == 1 and np.isnan(one.low)
    assert stats.greater_than(one) == stats.NOT_EVALUATED
    assert stats.within(one, 0.2, 0.4) == stats.NOT_EVALUATED
    assert stats.above(np.array([0.3])).verdict == stats.NOT_EVALUATED
    assert stats.equivalence(np.array([0.3]), 0.1).verdict == stats.NOT_EVALUATED
    assert stats.single_run(np.array([0.3]), 0.3).verdict == stats.NOT_EVALUATED


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


# -- one-sided p-values --------------------------------------------------------------------------
def test_one_sided_p_value_recomputed_independently_n30():
    """p of "mean > 0.04" = max(bootstrap-t share of T* ≥ t, scipy's one-sided t-test p)."""
    values = np.random.default_rng(5).gamma(2.0, 0.02, 30)
    t, mean, se = by_hand(values)
    observed = (mean - 0.04) / se
    boot = (1 + sum(v >= observed for v in t)) / (stats.N_RESAMPLES + 1)
    student = sps.ttest_1samp(values, 0.04, alternative="greater").pvalue
    assert stats.above(values, 0.04).p_value == pytest.approx(max(boot, student), abs=1e-15)


def test_p_value_at_most_2_5_percent_exactly_when_supported_n30():
    """On 300 samples of 30 spread around the threshold, p ≤ 0.025 ⇔ "supported"; and on
    normal data the p-value is never below the t-test's and close to it (median difference
    < 0.001, largest 0.026 measured)."""
    rng = np.random.default_rng(8)
    agree, close = 0, []
    for k in range(300):
        values = rng.normal(0.01 * (k % 7 - 2) / 3, 0.02, 30)
        decision = stats.above(values)
        agree += (decision.p_value <= stats.ALPHA) == (decision.verdict == stats.SUPPORTED)
        close.append(decision.p_value - sps.ttest_1samp(values, 0, alternative="greater").pvalue)
    assert agree == 300
    assert min(close) >= -1e-12 and np.median(close) < 0.001 and max(close) < 0.04


# -- equivalence (TOST) --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("shift", "verdict"),
    [(0.0, stats.SUPPORTED), (0.05, stats.CONTRADICTED), (0.01, stats.INCONCLUSIVE)],
)
def test_equivalence_verdict_and_tost_p_value_by_hand_margin_0_01_n30(shift, verdict):
    """TOST within ±0.01: the verdict from the interval, the p-value the larger of the two
    one-sided p-values, each max(bootstrap-t, scipy t-test), recomputed here."""
    values = np.random.default_rng(11).normal(shift, 0.005, 30)
    margin = 0.01
    t, mean, se = by_hand(values)
    scale = stats.N_RESAMPLES + 1
    low_t, high_t = (mean + margin) / se, (mean - margin) / se
    p_low = max(
        (1 + sum(v >= low_t for v in t)) / scale,
        sps.ttest_1samp(values, -margin, alternative="greater").pvalue,
    )
    p_high = max(
        (1 + sum(v <= high_t for v in t)) / scale,
        sps.ttest_1samp(values, margin, alternative="less").pvalue,
    )
    decision = stats.equivalence(values, margin)
    assert decision.verdict == verdict
    assert decision.p_value == pytest.approx(max(p_low, p_high), abs=1e-15)
    assert (decision.p_value <= stats.ALPHA) == (verdict == stats.SUPPORTED)
    assert decision.interval == stats.interval(values)


# -- a single new run ----------------------------------------------------------------------------
def test_prediction_interval_is_the_hull_of_normal_theory_and_the_range_n30():
    values = np.random.default_rng(2).lognormal(-2.5, 0.5, 30)
    k = sps.t.ppf(0.975, 29) * math.sqrt(1 + 1 / 30)
    mean, sd = values.mean(), values.std(ddof=1)
    low, high = stats.prediction_interval(values)
    assert low == pytest.approx(min(mean - k * sd, values.min()), abs=1e-15)
    assert high == pytest.approx(max(mean + k * sd, values.max()), abs=1e-15)
    assert high == values.max()  # right skew: the largest run lies beyond normal theory


@pytest.mark.parametrize(
    ("x", "verdict"),
    [(0.22, stats.SUPPORTED), (0.40, stats.CONTRADICTED), (0.275, stats.INCONCLUSIVE)],
)
def test_single_run_about_x_n30(x, verdict):
    """30 runs around 22% (sd 2.5 pp): a single run of 22% is typical, 40% is not, and 27.5%
    sits within the uncertainty of the interval's upper end."""
    values = np.random.default_rng(4).normal(0.22, 0.025, 30)
    result = stats.single_run(values, x)
    assert result.verdict == verdict
    assert result.high_range[0] < 0.275 < result.high_range[1]


def test_single_run_from_two_runs_is_inconclusive():
    """n = 2: the prediction interval is ±15.5 s wide and its ends are unknown: no verdict."""
    result = stats.single_run(np.array([0.21, 0.23]), 0.22)
    assert result.verdict == stats.INCONCLUSIVE
    assert result.low < 0 and result.high > 0.4


# -- probability of improvement ------------------------------------------------------------------
def test_probability_of_improvement_counts_ties_half():
    d = np.array([0.1, -0.2, 0.0, 0.3, 0.2, 0.0, -0.1, 0.4])
    assert stats.probability_of_improvement(d).estimate == (4 + 0.5 * 2) / 8


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        (81, 263, 0.2535, 0.3682),
        (15, 148, 0.0598, 0.1644),
        (0, 20, 0.0, 0.2005),
        (1, 29, 0.0018, 0.1963),
    ],
)
def test_probability_of_improvement_interval_matches_newcombe_1998(k, n, low, high):
    """The continuity-corrected Wilson interval against Newcombe (1998), Table II, method 4."""
    d = np.r_[np.ones(k), -np.ones(n - k)]
    value = stats.probability_of_improvement(d)
    assert value.estimate == k / n and value.n == n
    assert (value.low, value.high) == pytest.approx((low, high), abs=5e-5)


def test_probability_of_improvement_interval_by_hand_n30():
    """24 of 30 replicates better, 2 ties: p̂ = 25/30, by the formula written out here."""
    d = np.r_[np.full(24, 0.01), np.zeros(2), np.full(4, -0.01)]
    n, p, z = 30, 25 / 30, sps.norm.ppf(0.975)
    low = 2 * n * p + z**2 - 1 - z * math.sqrt(z**2 - 2 - 1 / n + 4 * p * (n * (1 - p) + 1))
    high = 2 * n * p + z**2 + 1 + z * math.sqrt(z**2 + 2 - 1 / n + 4 * p * (n * (1 - p) - 1))
    value = stats.probability_of_improvement(d)
    assert value.estimate == pytest.approx(p)
    assert value.low == pytest.approx(low / (2 * (n + z**2)), abs=1e-12)
    assert value.high == pytest.approx(high / (2 * (n + z**2)), abs=1e-12)
    everyone = stats.probability_of_improvement(np.full(30, 0.01))
    assert (everyone.estimate, everyone.high) == (1.0, 1.0) and everyone.low < 1


# -- multiplicity --------------------------------------------------------------------------------
def test_holm_against_a_hand_worked_example():
    """p = (0.01, 0.04, 0.03, 0.005): sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 gives
    0.02, 0.03, 0.06, 0.04, made non-decreasing: 0.02, 0.03, 0.06, 0.06."""
    adjusted = stats.holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02], abs=1e-15)


def test_holm_caps_at_1_and_skips_nan():
    adjusted = stats.holm([0.5, math.nan, 0.02, 0.9])
    assert adjusted[0] == 1.0 and math.isnan(adjusted[1])
    assert adjusted[2] == pytest.approx(0.06) and adjusted[3] == 1.0
    assert stats.expected_false_verdicts(10) == pytest.approx(0.25)


# -- power ---------------------------------------------------------------------------------------
def test_replicates_needed_against_a_direct_search_n30():
    values = np.random.default_rng(6).normal(0.03, 0.02, 30)
    sd = values.std(ddof=1)
    for distance in (0.002, 0.005, 0.01, 0.03):
        n = 2
        while sps.t.ppf(0.975, n - 1) * sd / math.sqrt(n) >= distance:
            n += 1
        power = stats.replicates_needed(values, distance)
        assert power.needed == n
        assert power.n == 30
        assert power.half_width == pytest.approx(sps.t.ppf(0.975, 29) * sd / math.sqrt(30))
    assert stats.replicates_needed(values, 0.0).needed == math.inf


def test_bootstrap_t_statistics_are_the_formula_bit_for_bit() -> None:
    """`t_star` computes in place; each number is the formula's, repeated values included."""
    rng = np.random.default_rng(3)
    samples = [
        rng.normal(size=(200, 30)),
        rng.lognormal(size=(50, 8)),
        np.concatenate([np.ones((5, 6)), rng.normal(size=(5, 6))]),  # one repeated value
    ]
    for x in samples:
        n = x.shape[-1]
        counts = stats.design(n, 999)
        centred = x - x.mean(axis=-1, keepdims=True)
        shift = centred @ counts.T / n
        var = ((centred * centred) @ counts.T / n - shift * shift) * n / (n - 1)
        scale = np.abs(centred).max(axis=-1, keepdims=True)
        tiny = var <= (1e-12 * scale) ** 2
        with np.errstate(divide="ignore", invalid="ignore"):
            t = shift / np.sqrt(np.where(tiny, 1.0, var) / n)
            flat = np.abs(shift) <= 1e-12 * scale
            expected = np.where(tiny, np.where(flat, 0.0, np.sign(shift) * np.inf), t)
        found = stats.t_star(x, counts)
        assert np.array_equal(found, expected) and (np.signbit(found) == np.signbit(expected)).all()
