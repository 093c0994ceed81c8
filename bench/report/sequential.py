"""Anytime-valid verdicts: intervals that hold at every look at once.

With ``replicates: auto`` a study looks at its claims after every batch of replicates and stops
as soon as they are decided. A fixed-n 95% interval checked after every batch errs much more
often than 5% (`simulate` measures it: about 9% false "supported" over ten looks at a true
difference of 0, against 2.5% at one look). A *confidence sequence* (CS) is a sequence of
intervals C_n that covers the mean at every n simultaneously with probability ≥ 95%, so a
verdict read at any look, however the looks were chosen, keeps its error rate (Howard,
Ramdas, McAuliffe & Sekhon 2021, "Time-uniform, nonparametric, nonasymptotic confidence
sequences", Ann. Statist. 49, 1055–1080).

The boundary is Robbins' two-sided normal mixture (Howard et al. 2021, the normal mixture
boundary; Robbins 1970): mixing exp(λS_n − λ²V_n/2) over λ ~ N(0, 1/ρ') gives the
nonnegative supermartingale

    M_n = √(1 / (nρ² + 1)) · exp( ρ² S_n² / (2σ²(nρ² + 1)) ),   S_n = n(x̄_n − μ),

and Ville's inequality, P(∃n: M_n ≥ 1/α) ≤ α, gives the CS

    x̄_n ± σ · √( 2(nρ² + 1) / (n²ρ²) · log(√(nρ² + 1) / α) ).

σ is estimated by the sample sd at each look, which makes it an asymptotic confidence sequence
(Waudby-Smith, Arnold, Wu, Wang & Ramdas 2024, "Time-uniform central limit theory and
asymptotic confidence sequences", Ann. Statist. 52): valid as n grows for any distribution
with a finite variance, and measured here at the looks a study takes (`simulate`; the test
suite checks the false-"supported" rate at a true difference of 0 on the project's shapes).
ρ sets where the boundary is tightest: ρ² = (−2 log α + log(1 − 2 log α)) / n*, n* =
``TIGHTEST_AT`` replicates (Waudby-Smith et al. 2024); any ρ > 0 is valid.

A one-sided decision reads one end (α/2 = 2.5% each side, as the fixed design's); its anytime
p-value is min(1, 1/(2M_n)), which is ≤ 2.5% exactly when the CS excludes the threshold on
that side (for Holm's adjustment).

A single run's number (a prediction interval, not a mean) has no CS here: its check
(`stats.single_run`) is made at look k with its ends' uncertainty at level α_k = α·6/(π²k²),
whose sum over every look is α (a union bound: "alpha spending").
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from bench.report import stats
from bench.report.stats import CONTRADICTED, INCONCLUSIVE, NOT_EVALUATED, SUPPORTED

ALPHA = 1 - stats.CONFIDENCE  # two-sided: 2.5% on each side, as the fixed design
TIGHTEST_AT = 30
METHOD = "anytime-valid: a confidence sequence (Howard et al. 2021) ∪ the bootstrap-t at its level"
BOOTSTRAP_FROM = 10
"""Fewer replicates: the CS alone (a bootstrap-t at the CS's tiny level reads its most extreme
resample, infinite when one repeats a single value: n^(1−n) of them, 1 in 7,800 at n = 6)."""


@dataclass(frozen=True)
class Design:
    """How a study's replicates are added: batches of ``batch``, at most ``budget``."""

    batch: int = 10
    budget: int = 100

    def look(self, n: int) -> int:
        """The look (1, 2, ...) at which ``n`` replicates are read."""
        return max(1, math.ceil(n / self.batch))

    def looks(self, available: int) -> list[int]:
        """The replicate counts of every look up to ``available`` replicates."""
        return list(range(self.batch, available + 1, self.batch)) or [available]


def rho_squared(tightest_at: int = TIGHTEST_AT, alpha: float = ALPHA) -> float:
    """ρ² of the mixture that makes the boundary tightest at ``tightest_at`` replicates."""
    log = -2 * math.log(alpha)
    return (log + math.log(1 + log)) / tightest_at


def radius(
    n: np.ndarray | int,
    sd: np.ndarray | float,
    alpha: float = ALPHA,
    tightest_at: int = TIGHTEST_AT,
) -> np.ndarray:
    """The CS's half-width at ``n`` replicates with standard deviation ``sd`` (module docstring)."""
    n = np.asarray(n, dtype=float)
    r2 = rho_squared(tightest_at, alpha)
    grown = n * r2 + 1
    return np.asarray(sd) * np.sqrt(2 * grown / (n**2 * r2) * np.log(np.sqrt(grown) / alpha))


def _moments(values: np.ndarray) -> tuple[int, float, float]:
    values = np.asarray(values, dtype=float)
    n = len(values)
    mean = float(values.mean()) if n else math.nan
    sd = float(values.std(ddof=1)) if n > 1 else math.nan
    return n, mean, sd


def level(n: int) -> float:
    """The one-sided level at which a fixed-n interval is as wide as the CS at ``n`` (normal
    theory): 1 − Φ(c_n), c_n = √n · radius(n, 1); 0.13% at n = 30."""
    return float(scipy_stats.norm.sf(float(radius(n, 1.0)) * math.sqrt(n)))


def bounds(x: np.ndarray, resamples: int = stats.N_RESAMPLES) -> tuple[np.ndarray, np.ndarray]:
    """The anytime-valid 95% interval of the mean at this look, for each sample in the last
    axis of ``x``: the hull of the confidence sequence and the report's fixed-n interval
    (`stats.mean_bounds`: the studentized bootstrap ∪ t) taken at the CS's own pointwise level
    (`level`). The CS alone, with its sample sd, under-covers on the skewed side while few
    replicates have reached the tail (5.6% false "supported" on `fig2` ReLU's errors against
    2.5% nominal); the bootstrap-t at the same level widens that side as it widens a fixed
    interval (1.0% there), and never narrows the CS."""
    x = np.asarray(x, dtype=float)
    n = x.shape[-1]
    mean, sd = x.mean(axis=-1), x.std(axis=-1, ddof=1)
    half = radius(n, sd)
    if n < BOOTSTRAP_FROM:
        return mean - half, mean + half
    a = level(n)
    boot_low, boot_high = stats.mean_bounds(x, resamples, levels=(a, a))
    return np.minimum(mean - half, boot_low), np.maximum(mean + half, boot_high)


def interval(values: np.ndarray) -> stats.Interval:
    """The mean of ``values`` and its anytime-valid interval at this look (`bounds`); NaN ends
    with fewer than MIN_FOLDS values or a non-finite one."""
    values = np.asarray(values, dtype=float)
    n, mean, _ = _moments(values)
    if n < stats.MIN_FOLDS or not np.all(np.isfinite(values)):
        return stats.Interval(mean, math.nan, math.nan, n)
    low, high = bounds(values)
    return stats.Interval(mean, float(low), float(high), n)


def mixture(values: np.ndarray, threshold: float) -> float:
    """M_n at mean ``threshold`` (module docstring); ∞ when every value is equal and off the
    threshold, 1 when on it."""
    n, mean, sd = _moments(values)
    r2 = rho_squared()
    if sd == 0:
        return 1.0 if mean == threshold else math.inf
    exponent = r2 * (n * (mean - threshold)) ** 2 / (2 * sd**2 * (n * r2 + 1))
    return math.exp(min(exponent, 700.0)) / math.sqrt(n * r2 + 1)


def p_above(values: np.ndarray, threshold: float) -> float:
    """The anytime-valid one-sided p-value of "the mean is above ``threshold``", consistent
    with `bounds` (≤ 2.5% exactly when its low end is above the threshold): the larger of the
    mixture's min(1, 1/(2M_n)) and the fixed-n p-value (`stats.p_sides`) rescaled from the
    pointwise level to 2.5%."""
    values = np.asarray(values, dtype=float)
    if not float(np.mean(values)) > threshold:
        return 1.0
    anytime = 1 / (2 * mixture(values, threshold))
    if len(values) < BOOTSTRAP_FROM:
        return min(1.0, anytime)
    fixed, _ = stats.p_sides(values[None], threshold, stats.N_RESAMPLES)
    rescaled = float(fixed[0]) * stats.ALPHA / level(len(values))
    return min(1.0, max(anytime, rescaled))


def p_below(values: np.ndarray, threshold: float) -> float:
    """The anytime-valid one-sided p-value of "the mean is below ``threshold``"."""
    return p_above(-np.asarray(values, dtype=float), -threshold)


def decide(values: np.ndarray, threshold: float = 0.0) -> stats.Decision:
    """ "The mean is above ``threshold``", read from the confidence sequence at this look."""
    value = interval(values)
    verdict = stats.greater_than(value, threshold)
    if verdict == NOT_EVALUATED:
        return stats.Decision(verdict, math.nan, value)
    up, down = p_above(values, threshold), p_below(values, threshold)
    p = {SUPPORTED: up, CONTRADICTED: down}.get(verdict, min(up, down))
    return stats.Decision(verdict, p, value)


def within(values: np.ndarray, low: float, high: float) -> stats.Decision:
    """ "The mean lies within (low, high)": supported when the CS lies inside, contradicted when
    it lies wholly outside (two one-sided tests, each read from the CS)."""
    value = interval(values)
    verdict = stats.within(value, low, high)
    if verdict == NOT_EVALUATED:
        return stats.Decision(verdict, math.nan, value)
    p = max(p_above(values, low), p_below(values, high))
    if verdict == CONTRADICTED:
        p = p_below(values, low) if value.high < low else p_above(values, high)
    return stats.Decision(verdict, p, value)


def spent(look: int, alpha: float = ALPHA) -> float:
    """The two-sided level a single-run check may spend at ``look``: α·6/(π²k²) (sums to α)."""
    return alpha * 6 / (math.pi**2 * look**2)


# -- the optional-stopping simulation ----------------------------------------------------------
SIMULATION_RESAMPLES = 999  # per simulated interval ((999 + 1) · level rounded down, at least 1)
Sampler = Callable[[np.random.Generator, tuple[int, int]], np.ndarray]


@dataclass(frozen=True)
class Stopping:
    """One simulated design: the share of runs it ended "supported", and the replicates used."""

    supported: float
    contradicted: float
    mean_replicates: float


def _t_low_high(x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    return stats.t_bounds(x[:, :n])  # 2.5% each side: the fixed design's one look


def _anytime_low_high(x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    return bounds(x[:, :n], SIMULATION_RESAMPLES)


def simulate(
    sample: Sampler, design: Design, sims: int = 4000, seed: int = 0, anytime: bool = True
) -> Stopping:
    """Run ``sims`` studies on draws of ``sample`` (rng, shape) -> values: a look after every
    batch up to the budget, stopping at the first look whose interval excludes 0 (the CS when
    ``anytime``, else the fixed-n t-interval read as if it were the only look)."""
    rng = np.random.default_rng(seed)
    x = sample(rng, (sims, design.budget))
    read = _anytime_low_high if anytime else _t_low_high
    verdict = np.zeros(sims, dtype=int)  # +1 supported, -1 contradicted, 0 not yet
    used = np.full(sims, design.budget)
    for n in design.looks(design.budget):
        low, high = read(x, n)
        open_ = verdict == 0
        now = np.where(low > 0, 1, np.where(high < 0, -1, 0))
        stop = open_ & (now != 0)
        verdict[stop], used[stop] = now[stop], n
    return Stopping(float(np.mean(verdict == 1)), float(np.mean(verdict == -1)), float(used.mean()))


def fixed_replicates_for(
    sample: Sampler, power: float, budget: int, sims: int = 4000, seed: int = 0
) -> float:
    """The smallest n at which one fixed-n look (the t-interval) is "supported" in at least
    ``power`` of the simulated samples (the same draws as `simulate` with the same seed); ∞
    when no n ≤ ``budget`` reaches it."""
    rng = np.random.default_rng(seed)
    x = sample(rng, (sims, budget))
    for n in range(stats.MIN_FOLDS, budget + 1):
        low, _ = _t_low_high(x, n)
        if np.mean(low > 0) >= power:
            return float(n)
    return math.inf


__all__ = [
    "ALPHA",
    "INCONCLUSIVE",
    "METHOD",
    "Design",
    "Stopping",
    "decide",
    "fixed_replicates_for",
    "interval",
    "p_above",
    "p_below",
    "radius",
    "savings",
    "simulate",
    "spent",
    "within",
]


def savings(effects: dict[str, float], design: Design = Design(), sims: int = 2000) -> pd.DataFrame:
    """For each standardized effect δ/σ (a claim's mean paired difference over its sd): the
    adaptive design's share of studies ending "supported" and its mean replicates, beside the
    replicates one fixed look (the t-interval) needs for the same share, on the same draws."""
    rows = []
    for key, effect in effects.items():

        def draw(rng: np.random.Generator, shape: tuple[int, int], d: float = effect) -> np.ndarray:
            return rng.normal(d, 1.0, shape)

        adaptive = simulate(draw, design, sims)
        power = adaptive.supported
        # below 50% the design mostly does not decide: no fixed n to match
        fixed = fixed_replicates_for(draw, power, design.budget, sims) if power >= 0.5 else math.nan
        rows.append({"claim": key, "effect_sd": effect, "power": power,
                     "adaptive_mean_replicates": adaptive.mean_replicates,
                     "fixed_replicates_same_power": fixed})  # fmt: skip
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.report.sequential [claims.csv]``: `savings` at the effects of the
    committed report's better claims, as a Markdown table."""
    path = (argv or sys.argv[1:] or ["reports/claims.csv"])[0]
    frame = pd.read_csv(path)
    better = frame[frame["rule"].str.contains("minus") & ~frame["rule"].str.contains("TOST")]
    effects = {
        str(row.key): abs(float(row.estimate)) / float(row.sd)
        for row in better.itertuples()
        if math.isfinite(float(row.sd)) and float(row.sd) > 0
    }
    table = savings(effects)
    shown = table.assign(
        effect_sd=table["effect_sd"].map("{:.2f}".format),
        power=table["power"].map("{:.0%}".format),
        adaptive_mean_replicates=table["adaptive_mean_replicates"].map("{:.1f}".format),
    )
    print(shown.to_markdown(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
