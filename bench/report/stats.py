"""Interval estimates and three-valued verdicts.

Every claim of the report is decided from an interval, never from a point estimate alone:

- The unit of replication is the fold: each carries its own draws of the data, the initial
  weights and the mini-batch order. Settings compared on the same folds share those draws, so a
  comparison uses the *paired* per-fold differences (Bouthillier et al. 2021).
- The interval is a 95% bootstrap confidence interval, BCa (bias-corrected and accelerated,
  Efron 1987) from ``scipy.stats.bootstrap`` over folds: it needs no normality assumption, and it
  corrects the bias and skew the plain percentile interval shows on the handful of folds a
  sweep has (rliable, Agarwal et al. 2021, argues for such interval estimates). Resamples use a
  fixed seed, so the report is the same on every rebuild. When every value is equal, every
  resample is too, and the interval is that value.
- The verdict is ``supported`` when the interval lies on the claim's side of its threshold,
  ``contradicted`` when it lies on the other side, ``inconclusive`` when it spans it, and
  ``not evaluated`` (with the reason) when fewer than 2 folds or a setting is missing.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
N_RESAMPLES = 9999
SEED = 20240917  # fixed: the same intervals on every rebuild
MIN_FOLDS = 2

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive"
NOT_EVALUATED = "not evaluated"
VERDICTS = (SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_EVALUATED)


@dataclass(frozen=True)
class Interval:
    """A point estimate, its confidence interval, and the number of folds behind it."""

    estimate: float
    low: float
    high: float
    n: int


def interval(
    samples: Sequence[np.ndarray] | np.ndarray,
    statistic: Callable[..., np.ndarray] = np.mean,
    *,
    paired: bool = False,
) -> Interval:
    """``statistic`` of ``samples`` and its 95% BCa bootstrap interval.

    ``samples`` is one array (e.g. per-fold differences) or a tuple of arrays; with several,
    ``paired=False`` resamples each independently (e.g. two groups of draws), ``paired=True``
    resamples them together. ``statistic`` must accept ``axis=-1`` like numpy's reductions.
    """
    data = tuple(
        np.asarray(s, dtype=float) for s in (samples if isinstance(samples, tuple) else (samples,))
    )
    estimate = float(statistic(*data, axis=-1))
    n = min(len(d) for d in data)
    if n < MIN_FOLDS or not math.isfinite(estimate):
        return Interval(estimate, math.nan, math.nan, n)
    if all(np.all(d == d[0]) for d in data):  # degenerate: every resample gives the estimate
        return Interval(estimate, estimate, estimate, n)
    low, high = _bootstrap(data, statistic, paired, "BCa")
    if not (math.isfinite(low) and math.isfinite(high)):  # BCa undefined: the percentile one
        low, high = _bootstrap(data, statistic, paired, "percentile")
    return Interval(estimate, low, high, n)


def _bootstrap(
    data: tuple[np.ndarray, ...], statistic: Callable[..., np.ndarray], paired: bool, method: str
) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's own warning when BCa cannot be computed
        result = stats.bootstrap(
            data,
            statistic,
            n_resamples=N_RESAMPLES,
            paired=paired,
            confidence_level=CONFIDENCE,
            method=method,
            rng=np.random.default_rng(SEED),
        )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def greater_than(value: Interval, threshold: float = 0.0) -> str:
    """The verdict on "the quantity is above ``threshold``"."""
    if value.n < MIN_FOLDS or math.isnan(value.low):
        return NOT_EVALUATED
    if value.low > threshold:
        return SUPPORTED
    if value.high < threshold:
        return CONTRADICTED
    return INCONCLUSIVE


def within(value: Interval, low: float, high: float) -> str:
    """The verdict on "the quantity lies in [low, high]"."""
    if value.n < MIN_FOLDS or math.isnan(value.low):
        return NOT_EVALUATED
    if low <= value.low and value.high <= high:
        return SUPPORTED
    if value.high < low or value.low > high:
        return CONTRADICTED
    return INCONCLUSIVE


def combine(verdicts: Sequence[str]) -> str:
    """A claim made of several parts holds when every part does: contradicted if any part is,
    supported if all are, else inconclusive (not evaluated if any part could not be)."""
    if NOT_EVALUATED in verdicts:
        return NOT_EVALUATED
    if CONTRADICTED in verdicts:
        return CONTRADICTED
    return SUPPORTED if all(v == SUPPORTED for v in verdicts) else INCONCLUSIVE
