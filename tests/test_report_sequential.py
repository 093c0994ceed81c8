"""Anytime-valid verdicts (`bench.report.sequential`): the optional-stopping simulation, the
boundary's formula, and the replay of an adaptive run's looks from the table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from report_data import make_results
from scipy import stats as scipy_stats

from bench.report import claims, sequential, stats, views
from bench.study import ClaimSpec

LOOKS = sequential.Design(batch=10, budget=100)  # ten looks, as a study with the defaults
SHAPES = {
    "normal": lambda rng, shape: rng.standard_normal(shape),
    # right-skewed like an error rate, and its mirror: a claim can face either tail
    "lognormal(0.5)": lambda rng, shape: rng.lognormal(0, 0.5, shape) - math.exp(0.125),
    "mirrored lognormal(0.5)": lambda rng, shape: math.exp(0.125) - rng.lognormal(0, 0.5, shape),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_at_a_true_difference_of_0_peeking_after_every_batch_stays_below_the_nominal_rate(
    shape: str,
) -> None:
    """Ten looks (10, 20, ..., 100 replicates), stopping at the first decided one: the anytime
    interval's false "supported" rate stays ≤ 2.5% (its nominal one-sided level); the fixed-n
    t-interval read at every look exceeds it (the reason for the confidence sequence)."""
    sims = 2000  # Monte Carlo standard error of a 2.5% rate: 0.35 pp
    anytime = sequential.simulate(SHAPES[shape], LOOKS, sims=sims, seed=1)
    peeking = sequential.simulate(SHAPES[shape], LOOKS, sims=sims, seed=1, anytime=False)
    assert anytime.supported <= stats.ALPHA, anytime
    assert anytime.contradicted <= stats.ALPHA, anytime
    assert peeking.supported > stats.ALPHA, peeking  # 4-18% measured
    assert peeking.supported + peeking.contradicted > 4 * stats.ALPHA, peeking  # 19-23%


def test_one_fixed_look_at_the_t_interval_keeps_its_rate_so_the_excess_is_the_peeking() -> None:
    once = sequential.simulate(SHAPES["normal"], sequential.Design(100, 100), sims=4000, seed=2,
                               anytime=False)  # fmt: skip
    assert abs(once.supported - stats.ALPHA) < 0.01, once


def test_with_a_real_effect_the_adaptive_design_stops_early_and_decides() -> None:
    effect = lambda rng, shape: rng.normal(0.8, 1.0, shape)  # noqa: E731
    result = sequential.simulate(effect, LOOKS, sims=1000, seed=3)
    assert result.supported > 0.95 and result.mean_replicates < 40, result
    fixed = sequential.fixed_replicates_for(effect, result.supported, LOOKS.budget, 1000, 3)
    assert stats.MIN_FOLDS <= fixed < LOOKS.budget


@pytest.mark.parametrize("n", [2, 10, 30, 100])
def test_the_radius_is_the_normal_mixture_boundary_of_howard_et_al(n: int) -> None:
    """Ville's inequality on the two-sided normal mixture: |S_n| ≥ √((V + ρ') log((V + ρ')/(ρ'α²)))
    with V = nσ² and ρ' = σ²/ρ², divided by n."""
    sd, alpha = 1.7, 0.05
    r2 = sequential.rho_squared()
    v, rho = n * sd**2, sd**2 / r2
    expected = math.sqrt((v + rho) * math.log((v + rho) / (rho * alpha**2))) / n
    assert float(sequential.radius(n, sd)) == pytest.approx(expected, rel=1e-12)


def test_the_confidence_sequence_is_wider_than_one_fixed_look_and_holds_the_bootstrap() -> None:
    values = np.random.default_rng(4).lognormal(0, 0.5, 30)
    cs = sequential.interval(values)
    fixed = stats.interval(values)
    assert cs.low < fixed.low and cs.high > fixed.high
    half = float(sequential.radius(30, values.std(ddof=1)))
    assert cs.low <= values.mean() - half and cs.high >= values.mean() + half


@pytest.mark.parametrize("mean", [0.0, 0.4, 0.9, -0.9])
def test_the_anytime_p_value_is_below_2_5_percent_exactly_when_the_interval_decides(
    mean: float,
) -> None:
    values = np.random.default_rng(5).normal(mean, 1.0, 30)
    decision = sequential.decide(values, 0.0)
    decided = decision.verdict in (stats.SUPPORTED, stats.CONTRADICTED)
    assert (decision.p_value <= stats.ALPHA) == decided, decision


def test_the_single_run_check_spends_a_summable_level_per_look() -> None:
    levels = [sequential.spent(k) for k in range(1, 10_000)]
    assert sum(levels) == pytest.approx(sequential.ALPHA, rel=1e-3)
    assert levels[0] < sequential.ALPHA


def test_the_replayed_looks_equal_evaluating_the_first_n_replicates_alone() -> None:
    df = views.prepare(make_results(experiments=["fig4_losses"], folds=12, epochs=4, seed=6))
    spec = ClaimSpec(key="bce", claim="c", where="w", kind="better", experiment="fig4_losses",
                     column="loss", levels=("bce",), than=("mse",))  # fmt: skip
    design = sequential.Design(batch=4, budget=12)
    looks = claims.history(df, [spec], design)
    assert list(looks["replicates"]) == [4, 8, 12]
    for n, verdict in zip(looks["replicates"], looks["verdict"], strict=True):
        alone = df[df["fold"].isna() | (df["fold"] < n)]
        assert claims.verdicts_at(alone, [spec], design)["bce"] == verdict
        table = claims.replicate_table(alone, spec)
        assert len(table) == n  # the first n replicates, recomputed by pandas
    frame = pd.DataFrame({"replicates": [4, 8, 12, 4, 8, 12],
                          "key": ["a"] * 3 + ["b"] * 3,
                          "verdict": ["supported", "inconclusive", "supported",
                                      "supported", "supported", "inconclusive"]})  # fmt: skip
    took = claims.decided_at(frame)
    assert took["a"] == 12 and math.isnan(took["b"])


def test_the_fixed_t_quantile_used_by_the_simulation_is_scipys() -> None:
    x = np.random.default_rng(7).normal(size=(1, 20))
    low, high = sequential._t_low_high(x, 20)
    half = scipy_stats.t.ppf(0.975, 19) * x.std(ddof=1) / math.sqrt(20)
    assert float(high[0] - low[0]) == pytest.approx(2 * half)
