"""A synthetic results DataFrame shaped like `bench.collect`'s output, for the report tests.

Curves decay exponentially from chance (0.5) to a per-configuration final error, plus fold noise;
`final` overrides that final test error per (experiment, level) so a test can flip a claim.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import numpy as np
import pandas as pd

from bench.harness import catalog
from bench.report import views

ALL_EXPERIMENTS = tuple(views.EXPERIMENTS)

BASE = dict(views.DEFAULTS)  # the configuration each experiment holds fixed


def _sweep(name: str) -> tuple[str, tuple[str, ...], list[dict[str, str]]]:
    """The (column, values) an experiment's jobs differ in first, and every combination of the
    other columns they differ in (fig5 trains both frameworks in each job; its jobs differ in
    dtype, then engine)."""
    expected = catalog.experiments()[name].expected()
    expected.pop("framework", None)
    (column, values), *others = expected.items()
    combos = [dict(zip([c for c, _ in others], vs, strict=True))
              for vs in itertools.product(*(v for _, v in others))]  # fmt: skip
    return column, values, combos


# (column, values, other combinations) swept by each experiment, as its conf file says.
SWEEPS = {name: _sweep(name) for name in ALL_EXPERIMENTS}

# Final test error and decay rate (per epoch) per swept level: the paper's story.
FINAL = {
    "relu": 0.10,
    "tanh": 0.22,
    "leaky_relu": 0.10,
    "elu": 0.10,
    "sgd": 0.10,
    "sgd_momentum": 0.07,
    "adam": 0.04,
    "rmsprop": 0.05,
    "mse": 0.10,
    "bce": 0.06,
    "float32": 0.05,
    "float64": 0.05,
    "default": 0.10,
    "xavier_uniform": 0.09,
    "xavier_normal": 0.09,
    "kaiming_uniform": 0.08,
}
LR = {"adam": 0.001, "rmsprop": 0.001}
# fig3_tuned: each optimizer's best learning rate on the grid; the final error grows with the
# squared distance (in decades) from it
BEST_LR = {"sgd": 0.464, "sgd_momentum": 0.1, "adam": 0.01, "rmsprop": 0.00464}
# variance_sources: a crossed design of CROSSED_LEVELS draws of each stream (whatever `folds`),
# the final test error drawn from the three-way random-effects model with these sds per
# component (the shuffle's and the init × shuffle's zero, as the harness's design makes them:
# a batch order is a permutation of i.i.d. points). The curve's own noise (0.005) joins the
# residual, and the decay towards the final error scales every component a little.
CROSSED_LEVELS = 4
CROSSED_SD = {
    "data": 0.015,
    "init": 0.01,
    "shuffle": 0.0,
    "data:init": 0.005,
    "data:shuffle": 0.02,
    "init:shuffle": 0.0,
    "residual": 0.012,
}


def _crossed_errors(rng: np.random.Generator, base: float) -> np.ndarray:
    """Final test errors of the L³ crossed runs, fold k at (k // L², (k // L) % L, k % L)."""
    y = np.full((CROSSED_LEVELS,) * 3, base)
    for component, sd in CROSSED_SD.items():
        streams = component.split(":") if component != "residual" else ["data", "init", "shuffle"]
        shape = [CROSSED_LEVELS if s in streams else 1 for s in ("data", "init", "shuffle")]
        y = y + rng.normal(0.0, sd, shape)
    return np.clip(y, 0.0, 0.45).reshape(-1)


RATE = {"bce": 0.5, "adam": 0.6, "rmsprop": 0.5}
# fig2_activations: the sd of one run's final test error around its activation's level (the
# paper's single runs: Tanh ~22%, the others ~10%), drawn from a stream of its own so that the
# other experiments' numbers stay as they were
RUN_SD = {"tanh": 0.03, "relu": 0.015, "leaky_relu": 0.015, "elu": 0.015}
SECONDS_PER_EPOCH = {"custom": 0.02, "torch": 0.016}


def _curve(rng: np.random.Generator, epochs: int, final: float, rate: float) -> np.ndarray:
    t = np.arange(epochs + 1)
    noise = rng.normal(0.0, 0.005, epochs + 1) * (t > 0)
    return np.clip(final + (0.5 - final) * np.exp(-rate * t) + noise, 0.0, 1.0)


def _rate(value: float) -> float:
    """An error rate: in [0, 1], as the report's table check requires (a shift can push a
    synthetic curve past either end)."""
    return float(min(max(value, 0.0), 1.0))


def make_results(
    *,
    folds: int = 3,
    epochs: int = 12,
    experiments: Iterable[str] = ALL_EXPERIMENTS,
    final: dict[tuple[str, str], float] | None = None,
    rate: dict[tuple[str, str], float] | None = None,
    seconds_per_epoch: dict[str, float] | None = None,
    framework_offset: dict[str, float] | None = None,
    failed: Iterable[tuple[str, str]] = (),
    diverged: Iterable[tuple[str, str, int]] = (),
    extra_experiment: str | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Synthetic tidy results.

    Args:
        final: {(experiment, level): final test error} overrides.
        rate: {(experiment, level): per-epoch decay rate} overrides (higher converges faster).
        seconds_per_epoch: {framework: training seconds per epoch} overrides.
        framework_offset: {framework: added to its train and test errors} (fig5 only).
        failed: (experiment, level) jobs that failed: one row, fold/epoch NA, an error string.
        diverged: (experiment, level, fold): that fold's rows stop at epoch epochs // 2 with a
            non-finite loss and status 'diverged'.
        extra_experiment: name of an unknown experiment to add (the report must ignore it).
    """
    rng = np.random.default_rng(seed)
    runs = np.random.default_rng(seed + 1)  # the single runs' spread (RUN_SD)
    final = final or {}
    rates = rate or {}
    seconds = {**SECONDS_PER_EPOCH, **(seconds_per_epoch or {})}
    offset = framework_offset or {}
    failed = set(failed)
    diverged = set(diverged)
    names = list(experiments) + ([extra_experiment] if extra_experiment else [])
    rows = []
    for exp in names:
        column, values, combos = SWEEPS.get(exp, ("activation", ("relu",), [{}]))
        known = catalog.experiments().get(exp)
        for value, combo in itertools.product(values, combos):
            config = {**BASE, **(known.fixed() if known else {}), column: value, **combo}
            both = known is not None and "framework" in known.expected()
            frameworks = ("custom", "torch") if both else ("custom",)
            job = ",".join(f"{k}={v}" for k, v in {column: value, **combo}.items())
            common = {
                "experiment": exp,
                "seed": seed,
                "lr": LR.get(value, 0.1),
                "epochs": epochs,
                "batch_size": 100,
                "threads": 1,
                "device": "cpu",
                "torch_version": "2.13.0+cpu",
                "python_version": "3.12.3",
                "git_commit": "abc1234",
                "job": job,
            }
            if (exp, value) in failed:
                for fw in frameworks:
                    rows.append(
                        {
                            **common,
                            **config,
                            "framework": fw,
                            "fold": pd.NA,
                            "epoch": pd.NA,
                            "status": "failed",
                            "error": f"RuntimeError: synthetic failure of {job}",
                        }
                    )
                continue
            base = final.get((exp, value), FINAL.get(value, 0.1))
            decay = rates.get((exp, value), RATE.get(value, 0.3))
            grid = catalog.experiments()[exp].lr_grid if exp in catalog.experiments() else ()
            crossed = _crossed_errors(rng, base) if exp == "variance_sources" else None
            n_folds = folds if crossed is None else len(crossed)
            for lr, fold in itertools.product(grid or [common["lr"]], range(n_folds)):
                end = base
                if grid:
                    end = min(0.45, base + 0.1 * np.log10(lr / BEST_LR.get(value, 0.1)) ** 2)
                if crossed is not None:
                    end = float(crossed[fold])
                if exp == "fig2_activations" and value in RUN_SD:
                    end = float(np.clip(end + runs.normal(0.0, RUN_SD[value]), 0.0, 0.45))
                test = _curve(rng, epochs, end, decay)
                val = np.clip(test + rng.normal(0.0, 0.004, epochs + 1), 0.0, 1.0) if grid else None
                train = np.clip(test - 0.02, 0.0, 1.0)
                loss = 0.25 * (train + 0.02)
                drift = 1e-7 if config["dtype"] == "float32" else 1e-15
                for fw in frameworks:
                    shift = offset.get(fw, 0.0) if exp == "fig5_frameworks" else 0.0
                    if fw == "torch":
                        delta = drift * np.arange(epochs + 1) * rng.uniform(0.5, 1.5)
                        fw_loss = loss + delta
                        fw_loss[0] = loss[0]  # identical initial state: exactly equal
                    else:
                        fw_loss = loss
                    stop = epochs
                    status = "ok"
                    if (exp, value, fold) in diverged:
                        stop, status = epochs // 2, "diverged"
                    for epoch in range(stop + 1):
                        bad = status == "diverged" and epoch == stop
                        rows.append(
                            {
                                **common,
                                **config,
                                "framework": fw,
                                "fold": fold,
                                "epoch": epoch,
                                "train_loss": np.nan if bad else float(fw_loss[epoch]),
                                "train_error": np.nan if bad else _rate(train[epoch] + shift),
                                "test_error": np.nan if bad else _rate(test[epoch] + shift),
                                "train_seconds": seconds[fw] * epoch * (1 + 0.05 * fold),
                                "lr": lr,
                                "val_error": np.nan if bad or val is None else float(val[epoch]),
                                "val_loss": np.nan if bad or val is None else 0.25 * val[epoch],
                                "status": status,
                                "error": None,
                            }
                        )
    df = pd.DataFrame(rows)
    # the dtypes bench.collect writes: nullable ints, nullable strings
    for column in ("fold", "epoch", "seed", "epochs", "batch_size", "threads"):
        df[column] = df[column].astype("Int64")
    text = [c for c in df.columns if df[c].dtype == object or str(df[c].dtype) == "str"]
    df[text] = df[text].astype("string")
    return df
