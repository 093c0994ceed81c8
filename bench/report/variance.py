"""Where the spread between folds comes from (experiment ``variance_sources``).

Each fold of a job draws three random streams: the data points, the initial weights and the
mini-batch order. ``variance_sources`` trains the Table III configuration on many draws while
only one stream varies (``vary=data|init|shuffle``: the two others stay at draw 0's) and on draws
where all three vary (``vary=all``). The variance of the final test error over the draws of one
source is the spread that source causes alone; its share is that variance over the variance
with all three varying (shares need not sum to 1: the sources interact, and each is measured
at one value of the others).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.report import stats, views

EXPERIMENT = "variance_sources"
SOURCES = ("data", "init", "shuffle", "all")
COLUMNS = [
    "source",
    "n_draws",
    "mean",
    "sd",
    "variance",
    "variance_ci_low",
    "variance_ci_high",
    "share",
    "share_ci_low",
    "share_ci_high",
]


def _var(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.var(x, ddof=1, axis=axis)


def _share(x: np.ndarray, total: np.ndarray, axis: int = -1) -> np.ndarray:
    return _var(x, axis=axis) / _var(total, axis=axis)


def variance_table(df: pd.DataFrame) -> pd.DataFrame:
    """``variance_table_from`` the final rows of ``variance_sources`` in a prepared table."""
    curves, _ = views.curve_rows(df, EXPERIMENT)
    return variance_table_from(views.final_rows(curves, ["vary"]))


def variance_table_from(final: pd.DataFrame) -> pd.DataFrame:
    """One row per source (``vary``): draws, mean, sd, variance of the final test error with its
    95% bootstrap interval, and its share of the all-streams variance with its interval (the
    two groups of draws resampled independently). Empty without draws."""
    found = {
        source: final.loc[final["vary"] == source, "test_error"].to_numpy(float)
        for source in SOURCES
        if (final["vary"] == source).any()
    }
    total = found.get("all")
    rows = []
    for source, values in found.items():
        variance = stats.interval(values, _var)
        row = {
            "source": source,
            "n_draws": len(values),
            "mean": float(values.mean()),
            "sd": float(values.std(ddof=1)) if len(values) > 1 else np.nan,
            "variance": variance.estimate,
            "variance_ci_low": variance.low,
            "variance_ci_high": variance.high,
        }
        if source == "all":  # the reference itself: 100% by definition, no interval
            row["share"] = 1.0
        elif total is not None and len(total) >= stats.MIN_FOLDS and _var(total) > 0:
            share = stats.interval((values, total), _share)
            row |= {"share": share.estimate, "share_ci_low": share.low, "share_ci_high": share.high}
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def variance_markdown(table: pd.DataFrame) -> str:
    """The variance table in Markdown (errors as fractions, variances in 10⁻⁴)."""
    if table.empty:
        return f"Not available: `{EXPERIMENT}` is not in the results."

    def interval(low: float, high: float, scale: float, digits: int) -> str:
        if np.isnan(low):
            return "—"
        return f"[{low * scale:.{digits}f}, {high * scale:.{digits}f}]"

    shown = pd.DataFrame(
        {
            "Varying stream": table["source"].map(views.label),
            "Draws": table["n_draws"].astype(str),
            "Mean test error": table["mean"].map(lambda v: f"{v:.4f}"),
            "sd": table["sd"].map(lambda v: "—" if np.isnan(v) else f"{v:.4f}"),
            "Variance (×10⁻⁴)": table["variance"].map(lambda v: f"{v * 1e4:.2f}"),
            "95% CI (×10⁻⁴)": [
                interval(lo, hi, 1e4, 2)
                for lo, hi in zip(table["variance_ci_low"], table["variance_ci_high"], strict=True)
            ],
            "Share of all-streams variance": table["share"].map(
                lambda v: "—" if np.isnan(v) else f"{v:.0%}"
            ),
            "95% CI of the share": [
                interval(lo, hi, 100, 0).replace("]", "] %") if not np.isnan(lo) else "—"
                for lo, hi in zip(table["share_ci_low"], table["share_ci_high"], strict=True)
            ],
        }
    )
    return shown.to_markdown(index=False)
