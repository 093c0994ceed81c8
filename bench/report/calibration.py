"""How the report's intervals were chosen: coverage simulations on distributions shaped like
the project's own results.

Each *shape* is a population to draw replicates from: the empirical distribution of a set of
measured values (the final test errors of ``variance_sources`` per varying stream and pooled;
the per-fold differences of the paper's comparisons), or a synthetic skewed one. A simulation
draws ``sims`` samples of ``n`` values with replacement, computes every candidate interval on
each, and counts how often it covers the population's true value (the mean; one new draw for a
prediction interval; P(d > 0) + ½ P(d = 0) for the probability of improvement). For the mean,
each empirical shape is recentred on 0 (the true mean is then known exactly), which keeps its
spread, skew and ties.

Run ``python -m bench.report.calibration [reports/results.parquet]`` to print the tables quoted
in `bench.report.stats`'s docstring (about 5 minutes on 2 cores).

Bootstrap candidates share one resampling plan across the simulated samples (`stats.design`,
999 resamples): each simulated interval is still a valid bootstrap interval (its sample's
values are exchangeable draws), and Hall (1986) shows the coverage barely depends on the number
of resamples B once (B + 1)·α is whole; `study` checks this against B = 9,999.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import special
from scipy import stats as sps

from bench.report import stats

Draw = Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]
SIMS = 4000
SIZES = (10, 20, 30, 50)


# -- the shapes ------------------------------------------------------------------------------
def project_shapes(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """The measured values each shape resamples, from a prepared results table
    (`bench.report.views.prepare`): ``variance/<stream>`` (final test errors per varying
    stream, and ``variance/pooled``), and the per-fold differences of the claims, final epoch
    (``fig2 tanh-relu`` …, ``fig5 custom-torch test_error`` on float32 sequential, …), and two
    single settings' final test errors (``fig2 tanh``, ``fig2 relu``)."""
    from bench.report import views

    def table(name: str, column: str, metric: str = "test_error", pin=None) -> pd.DataFrame:
        curves, _ = views.curve_rows(df, name, pin)
        if pin:
            for key, value in pin.items():
                curves = curves[curves[key] == value]
        final = views.final_rows(curves, [column])
        return final.pivot_table(index=["seed", "fold"], columns=column, values=metric)

    def diff(t: pd.DataFrame, a: str, b: str) -> np.ndarray:
        both = t[[a, b]].dropna()
        return (both[a] - both[b]).to_numpy(float)

    out: dict[str, np.ndarray] = {}
    curves, _ = views.curve_rows(df, "variance_sources")
    final = views.final_rows(curves, ["vary"])
    for vary, group in final.groupby("vary"):
        out[f"variance/{vary}"] = group["test_error"].to_numpy(float)
    out["variance/pooled"] = final["test_error"].to_numpy(float)
    fig2 = table("fig2_activations", "activation")
    for other in ("relu", "leaky_relu", "elu"):
        out[f"fig2 tanh-{other}"] = diff(fig2, "tanh", other)
    out["fig2 tanh"] = fig2["tanh"].dropna().to_numpy(float)
    out["fig2 relu"] = fig2["relu"].dropna().to_numpy(float)
    for name in ("fig3_optimizers", "fig3_tuned"):
        fig3 = table(name, "optimizer")
        for other in ("adam", "rmsprop"):
            out[f"{name.replace('_optimizers', '')} sgd-{other}"] = diff(fig3, "sgd", other)
    pin = {"dtype": "float32", "engine": "sequential"}
    for metric in ("test_error", "train_error", "train_seconds"):
        fig5 = table("fig5_frameworks", "framework", metric, pin)
        out[f"fig5 custom-torch {metric}"] = diff(fig5, "custom", "torch")
    return out


def lognormal(sigma: float = 1.0) -> tuple[Draw, float]:
    """A lognormal(0, σ) draw and its mean exp(σ²/2) (skew 6.2 at σ = 1)."""
    return lambda rng, shape: rng.lognormal(0.0, sigma, shape), float(np.exp(sigma**2 / 2))


def outliers(share: float = 0.1, shift: float = 6.0) -> tuple[Draw, float]:
    """N(0, 1) with a share of outliers from N(shift, 1), and its mean share·shift."""

    def draw(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return rng.normal(0.0, 1.0, shape) + shift * (rng.random(shape) < share)

    return draw, share * shift


def empirical(values: np.ndarray, recentre: bool = True) -> tuple[Draw, float]:
    """Draws with replacement from ``values`` (recentred on 0: true mean 0), and the mean."""
    values = np.asarray(values, dtype=float)
    if recentre:
        values = values - values.mean()
    return lambda rng, shape: values[rng.integers(0, len(values), shape)], float(values.mean())


def all_shapes(df: pd.DataFrame | None) -> dict[str, tuple[Draw, float]]:
    """Every shape of the study: the project's (when a table is given), then the synthetic."""
    shapes = {k: empirical(v) for k, v in (project_shapes(df) if df is not None else {}).items()}
    shapes["lognormal(σ=0.5)"] = lognormal(0.5)
    shapes["lognormal(σ=1)"] = lognormal()
    shapes["normal + 10% outliers at +6 sd"] = outliers()
    return shapes


# -- candidate intervals of the mean (vectorised over simulated samples) -----------------------
def _row_quantiles(ordered: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per-row linearly interpolated quantiles (numpy's default) of row-sorted values."""
    position = q * (ordered.shape[-1] - 1)
    below = np.clip(np.floor(position).astype(int), 0, ordered.shape[-1] - 1)
    above = np.clip(below + 1, 0, ordered.shape[-1] - 1)
    rows = np.arange(len(ordered))
    weight = position - below
    return ordered[rows, below] * (1 - weight) + ordered[rows, above] * weight


def _resampled_means(x: np.ndarray, counts: np.ndarray) -> np.ndarray:
    return x @ counts.T / x.shape[-1]


def _percentile(x: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 2.5% and 97.5% quantiles of the resampled means (numpy's interpolation, as scipy)."""
    means = np.sort(_resampled_means(x, counts), axis=-1)
    q = np.full(len(x), stats.ALPHA)
    return _row_quantiles(means, q), _row_quantiles(means, 1 - q)


def bca(x: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The BCa interval of the mean (Efron 1987) as ``scipy.stats.bootstrap`` computes it:
    z₀ = Φ⁻¹(share of resampled means below x̄, ties half), a = Σd³ / (6 (Σd²)^{3/2}) with
    d = x − x̄ (the jackknife acceleration of a mean), quantile levels
    Φ(z₀ + (z₀ + z_α)/(1 − a(z₀ + z_α)))."""
    means = _resampled_means(x, counts)
    mean = x.mean(-1, keepdims=True)
    share = ((means < mean).sum(-1) + (means <= mean).sum(-1)) / (2 * means.shape[-1])
    z0 = special.ndtri(share)
    d = x - mean
    with np.errstate(divide="ignore", invalid="ignore"):
        a = (d**3).sum(-1) / (6 * ((d**2).sum(-1)) ** 1.5)
    ordered = np.sort(means, axis=-1)
    out = []
    for z in (special.ndtri(stats.ALPHA), special.ndtri(1 - stats.ALPHA)):
        level = special.ndtr(z0 + (z0 + z) / (1 - a * (z0 + z)))
        out.append(_row_quantiles(ordered, np.nan_to_num(level, nan=0.5)))
    return out[0], out[1]


MEAN_METHODS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "t": lambda x, counts: stats.t_bounds(x),  # x̄ ± t·s/√n
    "pct": _percentile,  # percentile bootstrap
    "BCa": bca,
    "boot-t": lambda x, counts: stats.studentized_bounds(x, counts.shape[0]),  # studentized
    "chosen": lambda x, counts: stats.mean_bounds(x, counts.shape[0]),  # boot-t ∪ t
}
"""The candidate intervals of the mean, by their short names in the tables."""


def mean_coverage(
    draw: Draw, truth: float, n: int, sims: int = SIMS, seed: int = 0, resamples: int = 999
) -> dict[str, tuple[float, float, float]]:
    """Each candidate's (coverage, share of intervals wholly above the truth, share wholly
    below) over ``sims`` samples of ``n`` draws. "Above" is a false "supported" at a true
    difference of 0."""
    x = draw(np.random.default_rng(seed), (sims, n))
    counts = stats.design(n, resamples, stats.SEED)
    out = {}
    for name, method in MEAN_METHODS.items():
        low, high = method(x, counts)
        above, below = np.mean(low > truth), np.mean(high < truth)
        out[name] = (1 - above - below, float(above), float(below))
    return out


# -- candidate prediction intervals for one new draw ------------------------------------------
def _normal_prediction(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = x.shape[-1]
    half = sps.t.ppf(1 - stats.ALPHA, n - 1) * x.std(-1, ddof=1) * np.sqrt(1 + 1 / n)
    return x.mean(-1) - half, x.mean(-1) + half


PREDICTION_METHODS: dict[str, Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]] = {
    "normal": _normal_prediction,  # x̄ ± t·s·√(1 + 1/n)
    "range": lambda x: (x.min(-1), x.max(-1)),  # [x₍₁₎, x₍ₙ₎]
    "chosen": lambda x: stats.prediction_bounds(x),  # the hull of both
}
"""The candidate prediction intervals, by their short names in the tables."""


def prediction_coverage(draw: Draw, n: int, sims: int = SIMS, seed: int = 0) -> dict[str, float]:
    """Each candidate's share of samples of ``n`` whose interval holds one further draw."""
    rng = np.random.default_rng(seed)
    x, new = draw(rng, (sims, n)), draw(rng, (sims,))
    out = {}
    for name, method in PREDICTION_METHODS.items():
        low, high = method(x)
        out[name] = float(np.mean((low <= new) & (new <= high)))
    return out


# -- candidate intervals of the probability of improvement ------------------------------------
def _wilson(share: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    z = special.ndtri(1 - stats.ALPHA)
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def _improvement_percentile(d: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    score = (d > 0) + 0.5 * (d == 0)
    return _percentile(score, counts)


IMPROVEMENT_METHODS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "Wilson": lambda d, counts: _wilson(((d > 0) + 0.5 * (d == 0)).mean(-1), d.shape[-1]),
    "pct": _improvement_percentile,
    "chosen": lambda d, counts: stats.improvement_bounds(d),  # Wilson, continuity-corrected
}
"""The candidate intervals of the probability of improvement, by short name."""


def improvement_coverage(
    values: np.ndarray, n: int, sims: int = SIMS, seed: int = 0
) -> dict[str, float]:
    """Each candidate's coverage of P(d > 0) + ½ P(d = 0) (``values``' empirical distribution,
    not recentred) over ``sims`` samples of ``n`` paired differences."""
    draw, _ = empirical(values, recentre=False)
    truth = float(np.mean((values > 0) + 0.5 * (values == 0)))
    d = draw(np.random.default_rng(seed), (sims, n))
    counts = stats.design(n, 999, stats.SEED)
    out = {}
    for name, method in IMPROVEMENT_METHODS.items():
        low, high = method(d, counts)
        out[name] = float(np.mean((low <= truth) & (truth <= high)))
    return out


# -- the study --------------------------------------------------------------------------------
def improvement_shapes(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """Paired differences for the probability of improvement: the claims' raw differences
    whose P(d > 0) is neither 0 nor 1, and every project shape shifted so that 50%, 75% or 90%
    of its values lie above 0 (shifted to a midpoint between two values: no tie created)."""
    out = {}
    for name, values in project_shapes(df).items():
        share = float(np.mean((values > 0) + 0.5 * (values == 0)))
        if 0 < share < 1 and "variance" not in name and name not in ("fig2 tanh", "fig2 relu"):
            out[f"{name} (raw)"] = values
        ordered = np.sort(values)
        for target in (0.5, 0.75, 0.9):
            k = round((1 - target) * len(values))
            out[f"{name} at {target:.0%}"] = values - (ordered[k - 1] + ordered[k]) / 2
    return out


def single_run_rates(draw: Draw, n: int = 30, sims: int = 400, seed: int = 0) -> dict[str, float]:
    """`stats.single_run`'s verdicts at x = the population median, and at its 1% and 99.5%
    quantiles (outside the central 95%), over ``sims`` samples of ``n``: the share of each."""
    rng = np.random.default_rng(seed)
    population = draw(rng, (200_000,))
    x = draw(rng, (sims, n))
    out = {}
    for where, q in (("median", 0.5), ("q1%", 0.01), ("q99.5%", 0.995)):
        target = float(np.quantile(population, q))
        verdicts = [stats.single_run(sample, target).verdict for sample in x]
        for v in (stats.SUPPORTED, stats.CONTRADICTED):
            out[f"{where} {v}"] = verdicts.count(v) / sims
    return out


def small_samples(df: pd.DataFrame | None, sims: int = SIMS) -> pd.DataFrame:
    """Below `stats.MIN_BOOTSTRAP`: the t-interval against bootstrap-t ∪ t at n = 3, 4, 5, over
    every shape: median and lowest coverage, median width in population sds, and the share of
    infinite intervals."""
    rows = []
    for shape, (draw, truth) in all_shapes(df).items():
        sd = float(np.std(draw(np.random.default_rng(1), (100_000,))))
        for n in (3, 4, 5):
            x = draw(np.random.default_rng(0), (sims, n))
            t_low, t_high = stats.t_bounds(x)
            b_low, b_high = stats.studentized_bounds(x, 999)
            for method, (low, high) in {
                "t": (t_low, t_high),
                "boot-t ∪ t": (np.minimum(t_low, b_low), np.maximum(t_high, b_high)),
            }.items():
                rows.append(dict(shape=shape, n=n, method=method,
                                 coverage=np.mean((low <= truth) & (truth <= high)),
                                 width=np.median(high - low) / sd,
                                 infinite=np.mean(~np.isfinite(high - low))))  # fmt: skip
    return (
        pd.DataFrame(rows)
        .groupby(["n", "method"])
        .agg(
            coverage_median=("coverage", "median"),
            coverage_lowest=("coverage", "min"),
            width_median=("width", "median"),
            infinite=("infinite", "median"),
        )
    )


def study(df: pd.DataFrame | None, sims: int = SIMS) -> dict[str, pd.DataFrame]:
    """Every table: mean coverage (method × shape × n, with the shares of intervals wholly
    above and below the truth), the check B = 999 vs 9,999 at n = 30, prediction coverage
    (method × shape × n), the single-run verdict rates at n = 30, and the coverage of the
    probability of improvement's interval (method × shape × n)."""
    shapes = all_shapes(df)
    rows = []
    for shape, (draw, truth) in shapes.items():
        for n in SIZES:
            for method, (cov, above, below) in mean_coverage(draw, truth, n, sims).items():
                rows.append(dict(shape=shape, n=n, method=method, coverage=cov, above=above,
                                 below=below))  # fmt: skip
    resamples = []
    for shape, (draw, truth) in shapes.items():
        x = draw(np.random.default_rng(1), (min(sims, 2000), 30))
        row = {"shape": shape}
        for b in (999, 9999):
            low, high = stats.mean_bounds(x, b)
            row[f"B={b}"] = float(np.mean((low <= truth) & (truth <= high)))
        resamples.append(row)
    prediction = [
        {"shape": s, "n": n} | prediction_coverage(draw, n, sims)
        for s, (draw, _) in shapes.items()
        for n in SIZES
    ]
    single = [{"shape": s} | single_run_rates(draw) for s, (draw, _) in shapes.items()]
    improvement = [
        {"shape": s, "n": n, "truth": float(np.mean((v > 0) + 0.5 * (v == 0)))}
        | improvement_coverage(v, n, sims)
        for s, v in (improvement_shapes(df) if df is not None else {}).items()
        for n in SIZES
    ]
    return {
        "mean": pd.DataFrame(rows),
        "resamples": pd.DataFrame(resamples),
        "prediction": pd.DataFrame(prediction),
        "single": pd.DataFrame(single),
        "improvement": pd.DataFrame(improvement),
        "small": small_samples(df, sims),
    }


def _table(frame: pd.DataFrame, digits: int = 3) -> str:
    return frame.to_string(float_format=lambda v: f"{v:.{digits}f}")


def report(tables: dict[str, pd.DataFrame]) -> str:
    """The study's tables as quoted in `bench.report.stats`'s docstring."""
    mean = tables["mean"]
    at = {n: mean[mean["n"] == n] for n in SIZES}
    order = list(dict.fromkeys(mean["shape"]))
    by30 = at[30].pivot_table(index="shape", columns="method", values="coverage")
    by30 = by30.loc[order, list(MEAN_METHODS)]
    chosen = mean[mean["method"] == "chosen"]
    sizes = chosen.pivot_table(index="shape", columns="n", values="coverage").loc[order]
    sizes.columns = [f"n={n}" for n in sizes.columns]
    misses = chosen[chosen["n"] == 30].set_index("shape").loc[order, ["above", "below"]]
    misses.columns = ["above@30", "below@30"]
    lowest = mean.groupby(["method", "n"])["coverage"].min().unstack().loc[list(MEAN_METHODS)]
    lowest.columns = [f"n={n}" for n in lowest.columns]
    pred = tables["prediction"]
    pred30 = pred[pred["n"] == 30].set_index("shape").loc[order, list(PREDICTION_METHODS)]
    pred_low = pred.groupby("n")[list(PREDICTION_METHODS)].min().T
    pred_low.columns = [f"n={n}" for n in pred_low.columns]
    imp = tables["improvement"]
    imp_low = imp.groupby("n")[list(IMPROVEMENT_METHODS)].agg(["min", "mean"]).T
    imp_low.columns = [f"n={n}" for n in imp_low.columns]
    return "\n\n".join(
        [
            "Coverage of the mean at n = 30, by method:\n" + _table(by30),
            "The chosen method by n, and its one-sided misses at n = 30:\n"
            + _table(pd.concat([sizes, misses], axis=1)),
            "Lowest coverage over the shapes, by method and n:\n" + _table(lowest),
            "Chosen method with 999 vs 9,999 resamples, n = 30:\n"
            + _table(tables["resamples"].set_index("shape")),
            "Prediction interval: coverage of one new draw at n = 30:\n" + _table(pred30),
            "Prediction interval, lowest over the shapes:\n" + _table(pred_low),
            "Probability of improvement: coverage, lowest and mean over "
            f"{imp['shape'].nunique()} shapes:\n" + _table(imp_low),
            "Below 5 values (n = 3, 4, 5), over the shapes:\n" + _table(tables["small"]),
            "single_run verdict shares at n = 30:\n"
            + _table(tables["single"].set_index("shape").loc[order], 2),
        ]
    )


def main(argv: list[str]) -> None:
    from bench.report import views

    path = argv[0] if argv else "reports/results.parquet"
    print(report(study(views.prepare(pd.read_parquet(path)))))


if __name__ == "__main__":
    main(sys.argv[1:])
