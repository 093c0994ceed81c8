"""Where the spread between runs comes from (experiment ``variance_sources``).

Each run draws three random streams: the data points, the initial weights and the mini-batch
order. ``variance_sources`` crosses them (``vary=crossed``): L draws of each stream, every one of
the L³ combinations trained once (fold k uses data draw k // L², init draw (k // L) % L and
shuffle draw k % L: `bench.harness.data.stream_fold`). The final test error y_ijk of data draw
i, init draw j and shuffle draw k follows the three-way crossed random-effects model without
replication

    y_ijk = μ + a_i + b_j + c_k + (ab)_ij + (ac)_ik + (bc)_jk + e_ijk,

every term independent, of mean 0 and variance σ²_data, σ²_init, σ²_shuffle, σ²_data×init,
σ²_data×shuffle, σ²_init×shuffle, σ²_residual. With one run per combination the three-way
interaction (abc)_ijk cannot be told apart from the residual: e_ijk is both (and since a run is
a deterministic function of its three draws, the residual *is* the three-way interaction, plus
whatever nondeterminism the arithmetic has). The seven components sum to the variance of the
final test error of one run whose three streams are all drawn afresh (what ``vary=all``
measures), so each component's share of that sum is the fraction of the run-to-run variance it
accounts for. Bouthillier et al. (2021, Accounting for Variance in Machine Learning Benchmarks,
MLSys) make the case for randomising these sources together; the crossed design also splits
their variance, interactions included (the one-at-a-time design it replaces, one stream varying
while the others stay at draw 0, measures each stream at one value of the others: its "shares"
need not sum to 1, and did not).

Estimates: the method of moments (ANOVA estimators) of a balanced random model (Searle, Casella
& McCulloch 1992, Variance Components, Wiley, ch. 4). The seven mean squares of the three-way
ANOVA (data, init, shuffle, the three two-way interactions, residual) are set equal to their
expectations under the model (`expected_mean_squares`), e.g. with a, b, c draws of data, init,
shuffle

    E[MS_data] = σ²_e + c σ²_data×init + b σ²_data×shuffle + bc σ²_data,
    E[MS_data×init] = σ²_e + c σ²_data×init,    E[MS_residual] = σ²_e,

and the system is solved for the components. A negative solution (a mean square below what the
terms it shares with others imply) is truncated at 0 and flagged (``truncated``); the shares are
the truncated components over their sum, so they sum to exactly 1.

Intervals: 95% generalized confidence intervals (Weerahandi 1993, Generalized Confidence
Intervals, JASA 88: 899–905; for variance components and their ratios, Burdick, Borror &
Montgomery 2005, Design and Analysis of Gauge R&R Studies, ASA-SIAM). Under the model the mean
squares are independent, MS_q ~ θ_q χ²(ν_q) / ν_q with θ_q = E[MS_q]; with U_q ~ χ²(ν_q), the
quantity ν_q ms_q / U_q (ms_q observed) is a generalized pivot of θ_q. `N_DRAWS` sets of pivots
(fixed seed: the same interval on every rebuild), each solved for the components like the mean
squares, give draws of every component (truncated at 0) and of every share (the truncated
component over the sum of the untruncated ones, the total's pivot): the 2.5% and 97.5%
percentiles are the interval. It is a parametric Monte Carlo from the fitted model's sampling
distribution, like a parametric bootstrap, but of pivots, so it inverts the χ² quantiles the
right way round. Why not the two usual choices: Satterthwaite's approximation gives no interval
for a share, and for a component estimated as a difference of mean squares it undercovers when
the component is small beside those it is separated from (71–80% for a 95% interval of a
component of 0.5 beside others of 1–4, and 52–72% in a design shaped like the real run); the
percentile parametric bootstrap from the fitted model undercovers with few degrees of freedom
(84–87% for the streams' components at 5 or 6 draws). The generalized intervals covered the
true components 95–98% of the time and the shares 92–98% (2,000 simulated designs of each of
the test's three truths at 5 and 6 draws), and started at 0 for a component whose true value is
0 in 97–98% of them (tests/test_report_variance.py measures both on 300). The total (the
variance of one run) has the Graybill–Wang interval of a positive combination of mean squares
instead (`total_interval`). The model's normality is an approximation for an error rate
(bounded, in steps of 1/n_test).

Reading the shuffle's components: a shuffle draw is a permutation of the indices of i.i.d.
points, so over data draws every permutation gives the same distribution of batches. The batch
order's effect is therefore the data × shuffle interaction (this order of these points), and
σ²_shuffle and σ²_init×shuffle are 0 by design, whatever the estimates say.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import chi2

from bench.report import stats, views

EXPERIMENT = "variance_sources"
VARY = "crossed"
STREAMS = ("data", "init", "shuffle")
COMPONENTS = ("data", "init", "shuffle", "data:init", "data:shuffle", "init:shuffle", "residual")
"""The seven variance components, in the ANOVA's order (the residual last)."""

LABELS = {
    "data": "data (points)",
    "init": "init (weights)",
    "shuffle": "shuffle (batch order)",
    "data:init": "data × init",
    "data:shuffle": "data × shuffle",
    "init:shuffle": "init × shuffle",
    "residual": "residual (data × init × shuffle)",
}
DRAW_COLUMNS = ("data_draw", "init_draw", "shuffle_draw")
"""The columns `crossed_runs` adds: each run's draw of each stream."""
N_DRAWS = 20_000
"""Draws of the generalized pivots behind each interval."""

COLUMNS = [
    "component",
    "variance",
    "ci_low",
    "ci_high",
    "share",
    "share_ci_low",
    "share_ci_high",
    "df",
    "sum_of_squares",
    "mean_square",
    "expected_mean_square",
    "raw_estimate",
    "truncated",
    "levels",
    "n_runs",
]


@dataclass(frozen=True)
class Anova:
    """The three-way ANOVA of an (a, b, c) array without replication, in `COMPONENTS` order."""

    shape: tuple[int, int, int]
    sum_of_squares: np.ndarray
    df: np.ndarray
    mean_square: np.ndarray


def anova(y: np.ndarray) -> Anova:
    """Sums of squares, degrees of freedom and mean squares of ``y[i, j, k]`` (data draw i, init
    draw j, shuffle draw k): the three main effects, the three two-way interactions and the
    residual (the three-way interaction)."""
    y = np.asarray(y, dtype=float)
    a, b, c = y.shape
    m = y.mean()
    mi, mj, mk = y.mean(axis=(1, 2)), y.mean(axis=(0, 2)), y.mean(axis=(0, 1))
    mij, mik, mjk = y.mean(axis=2), y.mean(axis=1), y.mean(axis=0)
    i, j, k = mi[:, None, None], mj[None, :, None], mk[None, None, :]
    residual = y - mij[:, :, None] - mik[:, None, :] - mjk[None, :, :] + i + j + k - m
    ss = np.array(
        [
            b * c * np.sum((mi - m) ** 2),
            a * c * np.sum((mj - m) ** 2),
            a * b * np.sum((mk - m) ** 2),
            c * np.sum((mij - mi[:, None] - mj[None, :] + m) ** 2),
            b * np.sum((mik - mi[:, None] - mk[None, :] + m) ** 2),
            a * np.sum((mjk - mj[:, None] - mk[None, :] + m) ** 2),
            np.sum(residual**2),
        ]
    )
    df = np.array(
        [a - 1, b - 1, c - 1, (a - 1) * (b - 1), (a - 1) * (c - 1), (b - 1) * (c - 1),
         (a - 1) * (b - 1) * (c - 1)],
        dtype=float,
    )  # fmt: skip
    return Anova((a, b, c), ss, df, ss / df)


def expected_mean_squares(shape: tuple[int, int, int]) -> np.ndarray:
    """E[MS] = ``matrix @ components`` under the balanced random model: row q holds the
    coefficient of each component (`COMPONENTS` order) in the expectation of mean square q."""
    a, b, c = shape
    return np.array(
        [
            [b * c, 0, 0, c, b, 0, 1],
            [0, a * c, 0, c, 0, a, 1],
            [0, 0, a * b, 0, b, a, 1],
            [0, 0, 0, c, 0, 0, 1],
            [0, 0, 0, 0, b, 0, 1],
            [0, 0, 0, 0, 0, a, 1],
            [0, 0, 0, 0, 0, 0, 1],
        ],
        dtype=float,
    )


def _ems_text(row: np.ndarray) -> str:
    """``'σ²_residual + 6 σ²_data:init + 36 σ²_data'``: one row of the EMS matrix."""
    terms = [
        f"{'' if weight == 1 else f'{weight:g} '}σ²_{name}"
        for name, weight in reversed(list(zip(COMPONENTS, row, strict=True)))
        if weight
    ]
    return " + ".join(terms)


def moments(mean_square: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """The components (untruncated) whose expected mean squares equal ``mean_square`` (the last
    axis; leading axes are batches)."""
    return np.asarray(mean_square) @ np.linalg.inv(expected_mean_squares(shape)).T


def decompose(
    y: np.ndarray,
    *,
    draws: int = N_DRAWS,
    seed: int = stats.SEED,
    confidence: float = stats.CONFIDENCE,
) -> pd.DataFrame:
    """The variance components of ``y[i, j, k]`` (data × init × shuffle draws, one run each):
    method-of-moments estimates truncated at 0, their shares of the sum, and 95% generalized
    confidence intervals of both (see the module docstring). One row per component, `COLUMNS`;
    ``attrs["total"]`` holds the sum (the variance of one run) and its interval."""
    table = anova(y)
    raw = moments(table.mean_square, table.shape)
    variance = np.maximum(raw, 0.0)
    total = variance.sum()
    rng = np.random.default_rng(seed)
    pivots = table.df * table.mean_square / rng.chisquare(table.df, size=(draws, len(table.df)))
    untruncated = moments(pivots, table.shape)
    drawn = np.maximum(untruncated, 0.0)
    # a share's denominator: the total's pivot, the sum of the untruncated pivots (truncating a
    # zero component's draws at 0 would inflate every draw of the total, and shift the other
    # shares' intervals down)
    sums = untruncated.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.where(sums[:, None] > 0, np.clip(drawn / sums[:, None], 0.0, 1.0), np.nan)
        share = variance / total if total > 0 else np.full_like(variance, np.nan)
    tails = [(1 - confidence) / 2, (1 + confidence) / 2]
    low, high = np.quantile(drawn, tails, axis=0)
    share_low, share_high = (
        np.nanquantile(shares, tails, axis=0) if total > 0 else np.full((2, len(raw)), np.nan)
    )
    ems = expected_mean_squares(table.shape)
    out = pd.DataFrame(
        {
            "component": COMPONENTS,
            "variance": variance,
            "ci_low": low,
            "ci_high": high,
            "share": share,
            "share_ci_low": share_low,
            "share_ci_high": share_high,
            "df": table.df.astype(int),
            "sum_of_squares": table.sum_of_squares,
            "mean_square": table.mean_square,
            "expected_mean_square": [_ems_text(row) for row in ems],
            "raw_estimate": raw,
            "truncated": raw < 0,
            "levels": "×".join(map(str, table.shape)),
            "n_runs": int(np.prod(table.shape)),
        },
        columns=COLUMNS,
    )
    total_low, total_high = total_interval(table, confidence)
    out.attrs["total"] = {"variance": total, "ci_low": total_low, "ci_high": total_high}
    return out


def total_interval(table: Anova, confidence: float = stats.CONFIDENCE) -> tuple[float, float]:
    """The interval of the sum of the components (the variance of one run): the Graybill–Wang
    modified large-sample interval of Σ w_q E[MS_q], a combination of the mean squares with
    weights w_q >= 0 (Graybill & Wang 1980, JASA 75: 869–873; Burdick & Graybill 1992,
    Confidence Intervals on Variance Components, §3.3): exact for a single mean square, and
    nearer the nominal rate than the sum of the pivots for this positive combination (94–97%
    against 91–94% in the test's simulations)."""
    weights = np.linalg.inv(expected_mean_squares(table.shape)).sum(axis=0)
    terms = np.clip(weights, 0.0, None) * table.mean_square
    estimate = terms.sum()
    g = 1 - table.df / chi2.ppf((1 + confidence) / 2, table.df)
    h = table.df / chi2.ppf((1 - confidence) / 2, table.df) - 1
    low = estimate - np.sqrt(np.sum((g * terms) ** 2))
    return float(max(low, 0.0)), float(estimate + np.sqrt(np.sum((h * terms) ** 2)))


def crossed_runs(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The final rows of the crossed runs of ``variance_sources`` in a prepared table, each with
    its ``data``/``init``/``shuffle`` draw (`DRAW_COLUMNS`) decoded from its fold and its job's
    number of folds (the ``folds`` column; the count of folds when the table lacks it), and
    notes on what was set aside (other ``vary`` values, other seeds or fold counts)."""
    curves, _ = views.curve_rows(df, EXPERIMENT)
    final = views.final_rows(curves, ["vary"])
    notes = []
    others = views.level_order("vary", final.loc[final["vary"] != VARY, "vary"].unique())
    if others:
        notes.append(f"set aside: runs with vary={', '.join(others)} (not the crossed design)")
    runs = final[final["vary"] == VARY]
    if runs.empty:
        empty = pd.Series(dtype="int64")
        return runs.assign(**dict.fromkeys([*DRAW_COLUMNS, "levels", "n_folds"], empty)), notes
    if runs["seed"].nunique() > 1:
        seed = runs["seed"].value_counts().sort_index().idxmax()
        notes.append(f"seed {seed} only (the results also hold other seeds)")
        runs = runs[runs["seed"] == seed]
    if "folds" in runs.columns and runs["folds"].notna().all():
        folds = runs["folds"].astype("int64")
        if folds.nunique() > 1:
            kept = int(folds.value_counts().sort_index().idxmax())
            notes.append(f"the runs of folds={kept} only (the results mix fold counts)")
            runs, folds = runs[folds == kept], folds[folds == kept]
    else:
        folds = pd.Series(int(runs["fold"].max()) + 1, index=runs.index)
    draws = fold_draws(runs["fold"].to_numpy("int64"), folds.to_numpy("int64"))
    levels = np.rint(np.cbrt(folds.to_numpy(float))).astype("int64")
    return runs.assign(**draws, levels=levels, n_folds=folds.to_numpy("int64")), notes


def fold_draws(fold: np.ndarray, folds: np.ndarray) -> dict[str, np.ndarray]:
    """The data, init and shuffle draws (`DRAW_COLUMNS`) of fold ``fold`` of a crossed job of
    ``folds`` = L³ folds: k // L², (k // L) % L, k % L, as `bench.harness.data.stream_fold`
    (which this torch-free module cannot import)."""
    levels = np.rint(np.cbrt(np.asarray(folds, dtype=float))).astype("int64")
    fold = np.asarray(fold, dtype="int64")
    return {
        column: fold // levels**power % levels
        for column, power in zip(DRAW_COLUMNS, (2, 1, 0), strict=True)
    }


def crossed_array(runs: pd.DataFrame) -> tuple[np.ndarray | None, str]:
    """``y[data draw, init draw, shuffle draw]`` of the final test errors of `crossed_runs`, or
    None and why when the design is not complete (a run diverged or is missing)."""
    if runs.empty:
        return None, f"`{EXPERIMENT}` has no runs with vary={VARY} in the results"
    levels = int(runs["levels"].iloc[0])
    if (runs["levels"] != levels).any() or levels < 2 or (runs["n_folds"] != levels**3).any():
        return None, f"its folds ({runs['n_folds'].iloc[0]}) are not L³ runs of a crossed design"
    y = np.full((levels,) * 3, np.nan)
    y[tuple(runs[c].to_numpy("int64") for c in DRAW_COLUMNS)] = runs["test_error"].to_numpy(float)
    missing = int(np.isnan(y).sum())
    if missing:
        return None, f"crossed runs without a final test error: {missing} of {levels**3}"
    return y, ""


def variance_table(df: pd.DataFrame) -> pd.DataFrame:
    """`decompose` the crossed runs of ``variance_sources`` in a prepared table: one row per
    variance component. Empty (``attrs["note"]`` says why) without a complete crossed design."""
    runs, notes = crossed_runs(df)
    y, why = crossed_array(runs)
    if y is None:
        table = pd.DataFrame(columns=COLUMNS)
        table.attrs["note"] = why
    else:
        table = decompose(y)
    table.attrs["notes"] = notes
    return table


def _interval(low: float, high: float, scale: float, digits: int, unit: str = "") -> str:
    if np.isnan(low):
        return "—"
    return f"[{low * scale:.{digits}f}, {high * scale:.{digits}f}]{unit}"


def variance_markdown(table: pd.DataFrame) -> str:
    """The components in Markdown (variances in 10⁻⁴ of squared error rate, shares in %), then
    the total variance and what was truncated."""
    if table.empty:
        why = table.attrs.get("note") or f"`{EXPERIMENT}` is not in the results"
        return f"Not available: {why}."
    shown = pd.DataFrame(
        {
            "Component": table["component"].map(LABELS),
            "Variance (×10⁻⁴)": table["variance"].map(lambda v: f"{v * 1e4:.3f}"),
            "95% CI (×10⁻⁴)": [
                _interval(lo, hi, 1e4, 3)
                for lo, hi in zip(table["ci_low"], table["ci_high"], strict=True)
            ],
            "Share": table["share"].map(lambda v: "—" if np.isnan(v) else f"{v:.1%}"),
            "95% CI of the share": [
                _interval(lo, hi, 100, 1, " %")
                for lo, hi in zip(table["share_ci_low"], table["share_ci_high"], strict=True)
            ],
            "df": table["df"].astype(str),
            "Mean square (×10⁻⁴)": table["mean_square"].map(lambda v: f"{v * 1e4:.3f}"),
        }
    )
    lines = [shown.to_markdown(index=False), ""]
    total = table.attrs.get("total")
    if total:
        sd = np.sqrt(total["variance"])
        lines.append(
            f"Total (the variance of one run, every stream drawn afresh): "
            f"{total['variance'] * 1e4:.3f} ×10⁻⁴ "
            f"{_interval(total['ci_low'], total['ci_high'], 1e4, 3)}, an sd of "
            f"{sd * 100:.2f} percentage points; {table['levels'].iloc[0]} draws, "
            f"{table['n_runs'].iloc[0]} runs."
        )
    truncated = table.loc[table["truncated"].astype(bool), "component"].map(LABELS).tolist()
    if truncated:
        lines.append(f"Truncated at 0 (a negative moment estimate): {', '.join(truncated)}.")
    notes = table.attrs.get("notes") or []
    if notes:
        lines.append("Note: " + "; ".join(notes) + ".")
    return "\n".join(lines).rstrip()
