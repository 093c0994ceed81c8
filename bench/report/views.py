"""Shared vocabulary of the report: what each experiment sweeps, display labels, tidy selections.

Figures, tables and claims read the results DataFrame only through these helpers, so that
"the final epoch", "the folds that finished" and "what is missing" mean the same thing everywhere.

Conventions:

- a *curve row* is one fold × epoch record (``fold`` and ``epoch`` known); a failed job has a
  single row without them and is never a curve row;
- the *final epoch* of a configuration is the largest epoch any of its folds reached;
- a fold's *final row* is its row at that epoch, kept only if its loss and errors are finite
  (a diverged fold stops earlier, or ends on a non-finite loss, and has none).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench import registry
from bench.harness import catalog, collect
from bench.harness.catalog import CONFIG_COLUMNS
from bench.report import memo

DEFAULTS: dict[str, str] = catalog.defaults()
"""The value of each configuration column in the default job (conf/config.yaml): what an
experiment that does not sweep a column holds it at."""

LEVELS: dict[str, tuple[str, ...]] = catalog.levels()
"""Every known value of each configuration column, in the order figures and tables use."""

LABELS: dict[str, str] = registry.labels()
"""The display label of every value in ``LEVELS`` (the registry's)."""

COLUMN_TITLES: dict[str, str] = registry.TITLES
"""Each configuration column's title."""

REQUIRED_COLUMNS: tuple[str, ...] = (
    "experiment",
    "framework",
    "activation",
    "optimizer",
    "loss",
    "init",
    "fold",
    "epoch",
    "train_loss",
    "train_error",
    "test_error",
    "train_seconds",
)
"""Without these the report cannot be built; every other column is optional."""


@dataclass(frozen=True)
class Experiment:
    """One experiment of the sweep: its name in the results and the columns it varies."""

    name: str
    swept: tuple[str, ...]
    figure: str
    what: str


PRESENTATION: dict[str, tuple[str, str]] = {
    "fig2_activations": ("Figure 2", "activation functions"),
    "fig3_optimizers": ("Figure 3", "optimizers"),
    "fig3_tuned": ("Figure 3, tuned", "optimizers at learning rates tuned in each replicate"),
    "fig4_losses": ("Figure 4", "loss functions"),
    "fig5_frameworks": ("Figure 5", "custom framework vs torch.nn"),
    "initializers": ("Initializer figure", "weight initializers"),
    "variance_sources": ("Variance figure", "sources of the spread between folds"),
    "digits": ("Figure 6", "a real image task: digits, MLP and CNN, custom vs torch.nn"),
}
"""(figure title, what it compares) of each experiment of conf/experiment (a test checks none is
missing)."""

EXPERIMENTS: dict[str, Experiment] = {
    name: Experiment(
        name, experiment.swept, *PRESENTATION.get(name, (name, experiment.description))
    )
    for name, experiment in catalog.experiments().items()
}
"""The experiments the report knows (those of conf/experiment); rows of any other experiment are
ignored (and listed)."""


def label(value: object) -> str:
    """The display label of a configuration value (the value itself when unknown)."""
    return LABELS.get(str(value), str(value))


def level_order(column: str, values: Iterable[object]) -> list[str]:
    """``values`` of ``column`` in canonical order: known levels first, then unknown ones sorted."""
    present = {str(v) for v in values if not pd.isna(v)}
    known = [v for v in LEVELS.get(column, ()) if v in present]
    return known + sorted(present - set(known))


OPTIONAL_COLUMNS: dict[str, str] = {
    "lr": "every job is taken at its optimizer's single learning rate: the tuned learning "
    "rates (`fig3_tuned`: its figure, table and claim) cannot be built",
    "status": "every row is taken as finished (`ok`): failed jobs are not listed, and a fold "
    "counts as diverged only where its loss is not finite",
    "seed": "every row is taken as seed 0: replicates are told apart by their fold only",
    "val_error": "no validation errors: the tuned learning rates (`fig3_tuned`) cannot be chosen",
}
"""The optional columns whose absence costs the report a section or a distinction, and what it
costs (`lr` and `val_error` only matter, and are only noted, when a tuned experiment is in the
results)."""


def prepare(df: pd.DataFrame) -> pd.DataFrame:
    """The results checked and typed as collect checks each job (`collect.check_table`: bad
    types or values out of range refused; rows repeated exactly dropped, with a note), with
    collect's selection of rows (the newest configuration per label combination), missing
    optional values filled (a note per missing column, `OPTIONAL_COLUMNS`), sorted.

    The notes are in ``attrs["ignored"]``, shown under "Missing or partial results".

    Raises:
        ValueError: if a required column is missing (the message names them all), or
            ``collect.TableError`` (a ValueError) naming the first problem of the table.
    """
    if df.attrs.get("prepared"):  # already checked (the CLI checks before it writes anything)
        return df
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"results lack required column(s): {', '.join(missing)}")
    out, notes = collect.check_table(df, duplicates="drop")
    tuned = bool(set(df["experiment"].astype(str).unique()) & set(TUNED))
    notes = [
        f"the results have no `{column}` column: {why}"
        for column, why in OPTIONAL_COLUMNS.items()
        if column not in df.columns and (tuned or column not in ("lr", "val_error"))
    ] + notes
    # optional columns a hand-made table may lack: the default job's values
    optional = {c: DEFAULTS[c] for c in CONFIG_COLUMNS if c not in REQUIRED_COLUMNS}
    out = out.fillna({"status": "ok", "seed": 0, **optional})
    out, ignored = collect.newest_config(out)
    sort = ["experiment", *CONFIG_COLUMNS, "seed", "fold", "epoch"]
    out = out.sort_values(sort, kind="mergesort", na_position="first").reset_index(drop=True)
    out.attrs["ignored"] = notes + ignored
    out.attrs["prepared"] = True
    return out


TUNED: dict[str, tuple[float, ...]] = {
    name: e.lr_grid for name, e in catalog.experiments().items() if e.lr_grid
}
"""The experiments whose jobs train a learning-rate grid (conf: ``lr_grid``), and that grid."""


def experiment_rows(df: pd.DataFrame, name: str, grid: bool = False) -> pd.DataFrame:
    """Every row of one experiment, failed-job rows included. For a tuned experiment, each
    replicate's rows at the learning rate that replicate chose (`lr_choices`), unless ``grid``.

    Selected once per table (`memo`: the report asks for each experiment hundreds of times); the
    frame returned is shared, never to be modified."""
    return memo.once(df, ("experiment_rows", name, grid), lambda: _experiment_rows(df, name, grid))


def _experiment_rows(df: pd.DataFrame, name: str, grid: bool) -> pd.DataFrame:
    if name not in TUNED or grid:
        return df[df["experiment"] == name]
    rows = experiment_rows(df, name, grid=True)
    chosen = lr_choices(rows)[[*SELECTION_KEYS, "seed", "fold", "chosen_lr"]].dropna()
    picked = pd.MultiIndex.from_frame(chosen).to_list()
    keys = rows[[*SELECTION_KEYS, "seed", "fold", "lr"]]
    at_choice = pd.MultiIndex.from_frame(keys).isin(picked)
    return rows[at_choice | (rows["status"] == "failed").to_numpy()]


#: what a learning rate is chosen for: each configuration of a tuned experiment
SELECTION_KEYS = [c for c in CONFIG_COLUMNS if c != "framework"] + ["framework"]
CHOICE_COLUMNS = [*SELECTION_KEYS, "seed", "fold", "chosen_lr", "val_error", "val_loss", "n_lrs",
                  "n_excluded"]  # fmt: skip


def lr_choices(rows: pd.DataFrame) -> pd.DataFrame:
    """The learning rate each replicate of a tuned experiment's ``rows`` (every lr of the grid)
    picks for itself, on its own validation split, never the test set: tuning is part of the
    replicate, so its variance is inside every interval computed from the replicates
    (Bouthillier et al. 2021).

    Rule, per configuration and replicate (seed, fold): among the learning rates at which this
    replicate reached the final epoch with finite numbers, the lowest final validation error;
    ties go to the lower validation loss, then the smaller lr. Columns: the configuration,
    ``seed``, ``fold``, ``chosen_lr`` (NaN when every rate diverged), its ``val_error`` and
    ``val_loss``, ``n_lrs`` (the grid's size) and ``n_excluded`` (rates at which it diverged).

    Computed once per frame (`memo`); the frame returned is shared, never to be modified.
    """
    return memo.once(rows, "lr_choices", lambda: _lr_choices(rows))


def _lr_choices(rows: pd.DataFrame) -> pd.DataFrame:
    curves = rows[rows["fold"].notna() & rows["epoch"].notna()]
    if curves.empty:
        return pd.DataFrame(columns=CHOICE_COLUMNS)
    keys = [*SELECTION_KEYS, "lr"]
    final = final_rows(curves, keys)
    final = final[final["val_error"].notna()]
    replicate = [*SELECTION_KEYS, "seed", "fold"]
    grid = curves.groupby(SELECTION_KEYS, dropna=False)["lr"].nunique().rename("n_lrs")
    ranked = final.sort_values(["val_error", "val_loss", "lr"], kind="mergesort")
    best = ranked.drop_duplicates(replicate, keep="first")
    out = (
        curves[replicate]
        .drop_duplicates()
        .merge(best[[*replicate, "lr", "val_error", "val_loss"]], on=replicate, how="left")
    )
    out = out.rename(columns={"lr": "chosen_lr"}).join(grid, on=SELECTION_KEYS)
    finished = final.groupby(replicate, dropna=False)["lr"].nunique().rename("n_finished")
    out = out.join(finished, on=replicate)
    out["n_excluded"] = (out["n_lrs"] - out["n_finished"].fillna(0)).astype("int64")
    return out[CHOICE_COLUMNS].reset_index(drop=True)


def lr_selection(rows: pd.DataFrame) -> pd.DataFrame:
    """How the replicates of each configuration of a tuned experiment chose (`lr_choices`):
    ``n_folds``, the rate chosen most often (``modal_lr``, ties to the smaller) and how many
    replicates chose it (``n_modal``), the distinct rates chosen (``n_distinct``), the smallest
    and largest chosen (``chosen_min``, ``chosen_max``), the mean validation error at the
    choices, the grid (``lr_min``, ``lr_max``, ``n_lrs``) and the replicates with no rate left
    (``n_unchosen``: every rate diverged)."""
    choices = lr_choices(rows)
    summary = ["n_folds", "modal_lr", "n_modal", "n_distinct", "chosen_min", "chosen_max",
               "val_error_mean", "lr_min", "lr_max", "n_lrs", "n_unchosen"]  # fmt: skip
    columns = [*SELECTION_KEYS, *summary]
    if choices.empty:
        return pd.DataFrame(columns=columns)
    lrs = rows.groupby(SELECTION_KEYS, dropna=False)["lr"].agg(["min", "max"])
    out = []
    for config, group in choices.groupby(SELECTION_KEYS, sort=False, dropna=False):
        chosen = group["chosen_lr"].dropna()
        counts = chosen.value_counts().sort_index(kind="mergesort")
        modal = counts.idxmax() if len(counts) else float("nan")  # first maximum: smaller lr
        out.append(
            dict(zip(SELECTION_KEYS, config, strict=True))
            | {
                "n_folds": len(group),
                "modal_lr": modal,
                "n_modal": int(counts.max()) if len(counts) else 0,
                "n_distinct": len(counts),
                "chosen_min": chosen.min(),
                "chosen_max": chosen.max(),
                "val_error_mean": group["val_error"].mean(),
                "lr_min": lrs.loc[config, "min"],
                "lr_max": lrs.loc[config, "max"],
                "n_lrs": int(group["n_lrs"].iloc[0]),
                "n_unchosen": int(group["chosen_lr"].isna().sum()),
            }
        )
    return pd.DataFrame(out, columns=columns)


def curve_rows(
    df: pd.DataFrame, name: str, pin: dict[str, str] | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """The fold × epoch rows of one experiment, with the columns it does not sweep held fixed.

    A column the experiment does not sweep (and every column in ``pin``) is held to one value:
    the preferred one (``pin``, else the default) when present, else the first in canonical order.
    Returns the rows (``fold`` and ``epoch`` as plain ints) and one note per column held fixed
    while the results hold several values.

    Computed once per table and ``pin`` (`memo`); the frame returned is shared, never to be
    modified.
    """
    pins = tuple((pin or {}).items())  # in order: the order of the notes follows it
    rows, notes = memo.once(df, ("curve_rows", name, pins), lambda: _curve_rows(df, name, pin))
    return rows, list(notes)


def _curve_rows(
    df: pd.DataFrame, name: str, pin: dict[str, str] | None
) -> tuple[pd.DataFrame, list[str]]:
    exp = EXPERIMENTS[name]
    rows = experiment_rows(df, name)
    rows = rows[rows["fold"].notna() & rows["epoch"].notna()]
    wanted = {c: DEFAULTS[c] for c in CONFIG_COLUMNS if c not in exp.swept}
    wanted.update(pin or {})
    notes = []
    for col, want in wanted.items():
        values = level_order(col, rows[col].unique())
        if len(values) > 1:
            keep = want if want in values else values[0]
            others = ", ".join(label(v) for v in values if v != keep)
            notes.append(f"{COLUMN_TITLES[col]} held at {label(keep)} (results also hold {others})")
            rows = rows[rows[col] == keep]
    rows = rows.astype({"fold": "int64", "epoch": "int64"})
    return rows, notes


def config_keys(rows: pd.DataFrame, name: str) -> list[str]:
    """The columns that tell configurations of one experiment apart: swept ones, then any other
    configuration column (or ``lr``) that varies in ``rows``."""
    swept = list(EXPERIMENTS[name].swept)
    # a tuned experiment's replicates each train at their own rate: lr is not a configuration
    lr = () if name in TUNED else ("lr",)
    extra = [
        c
        for c in (*CONFIG_COLUMNS, *lr)
        if c not in swept and c in rows.columns and rows[c].nunique(dropna=False) > 1
    ]
    return swept + extra


def final_rows(curves: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Each fold's row at its configuration's final epoch, kept only when loss and errors are
    finite; a ``final_epoch`` column records that epoch."""
    if curves.empty:
        return curves.assign(final_epoch=pd.Series(dtype="int64"))
    last = curves.groupby(list(keys), dropna=False)["epoch"].transform("max")
    finite = np.isfinite(curves[["train_loss", "train_error", "test_error"]]).all(axis=1)
    return curves[(curves["epoch"] == last) & finite].assign(final_epoch=last)


def diverged_units(curves: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """One row per configuration × seed × fold: ``diverged`` is true when the fold's status says
    so, its loss became non-finite, or it stopped before the configuration's final epoch."""
    if curves.empty:
        return pd.DataFrame(columns=[*keys, "seed", "fold", "diverged"])
    c = curves.assign(
        _last=curves.groupby(list(keys), dropna=False)["epoch"].transform("max"),
        _bad=(curves["status"] == "diverged") | ~np.isfinite(curves["train_loss"]),
    )
    g = c.groupby([*keys, "seed", "fold"], dropna=False)
    out = g.agg(bad=("_bad", "any"), reached=("epoch", "max"), last=("_last", "first"))
    out["diverged"] = out["bad"] | (out["reached"] < out["last"])
    return out[["diverged"]].reset_index()


def failed_jobs(df: pd.DataFrame) -> pd.DataFrame:
    """The failed jobs of every experiment: rows with status ``failed`` (one per job)."""
    cols = [c for c in ("experiment", *CONFIG_COLUMNS, "job", "error") if c in df.columns]
    failed = df[df["status"] == "failed"]
    return failed[cols].drop_duplicates().reset_index(drop=True)


def expected_configs(name: str) -> list[dict[str, str]]:
    """Every configuration an experiment is meant to hold (the values its file sweeps)."""
    combos: list[dict[str, str]] = [{}]
    for col, values in catalog.experiments()[name].expected().items():
        combos = [{**c, col: v} for c in combos for v in values]
    return combos


def missing_configs(df: pd.DataFrame, name: str) -> list[tuple[dict[str, str], str]]:
    """The expected configurations of an experiment with no fold reaching its final epoch, each
    with why: ``'failed'`` (its job failed), ``'diverged'`` (every fold diverged) or ``'not run'``.
    Computed once per table (`memo`).
    """
    return list(memo.once(df, ("missing_configs", name), lambda: _missing_configs(df, name)))


def _missing_configs(df: pd.DataFrame, name: str) -> list[tuple[dict[str, str], str]]:
    curves, _ = curve_rows(df, name)
    swept = list(EXPERIMENTS[name].swept)
    rows = experiment_rows(df, name)

    def present(frame: pd.DataFrame) -> set[tuple[str, ...]]:
        return {tuple(r) for r in frame[swept].drop_duplicates().astype(str).itertuples(False)}

    done = present(final_rows(curves, swept))
    started = present(curves)
    failed = present(rows[rows["status"] == "failed"])
    out = []
    for config in expected_configs(name):
        key = tuple(config[k] for k in swept)
        if key in done:
            continue
        reason = "failed" if key in failed else "diverged" if key in started else "not run"
        out.append((config, reason))
    return out


def diverged_notes(curves: pd.DataFrame, keys: Sequence[str]) -> list[str]:
    """One note per configuration with diverged folds: how many, out of how many. Computed once
    per frame and keys (`memo`: a figure and the README note the same curves)."""
    key = ("diverged_notes", tuple(keys))
    return list(memo.once(curves, key, lambda: _diverged_notes(curves, keys)))


def _diverged_notes(curves: pd.DataFrame, keys: Sequence[str]) -> list[str]:
    units = diverged_units(curves, keys)
    notes = []
    for config, group in units.groupby(list(keys), sort=False):
        bad = int(group["diverged"].sum())
        if bad:
            values = config if isinstance(config, tuple) else (config,)
            name = ", ".join(label(v) for v in values)
            notes.append(f"{name}: {bad} of {len(group)} folds diverged")
    return notes


def partial_notes(curves: pd.DataFrame, keys: Sequence[str]) -> list[str]:
    """One note per configuration holding fewer folds than its job was configured for (a job
    killed before its last fold: re-running the sweep resumes it)."""
    if "folds" not in curves.columns or curves["folds"].isna().all() or curves.empty:
        return []
    # lr tells configurations apart when a replicate trains several rates (a grid, not tuned
    # per replicate: those carry one rate each, their own)
    several = curves.groupby([*keys, "seed", "fold"], dropna=False)["lr"].nunique().max() > 1
    keys = [*keys, "lr"] if several and "lr" not in keys else list(keys)
    grouped = curves.groupby(list(keys), dropna=False, sort=False)
    held = grouped[["seed", "fold"]].apply(lambda g: len(g.drop_duplicates()))
    configured = grouped["folds"].max()
    notes = []
    for config, n in held.items():
        want = configured[config]
        if pd.notna(want) and n < want:
            values = config if isinstance(config, tuple) else (config,)
            name = ", ".join(_key(v) for v in values)
            notes.append(
                f"{name}: partial, {n} of {int(want)} folds (an interrupted job; re-run the "
                "sweep to resume it)"
            )
    return notes


def _key(value: object) -> str:
    return f"lr {value:g}" if isinstance(value, float) else label(value)


def describe_config(config: dict[str, str]) -> str:
    """``{'framework': 'torch', 'dtype': 'float64'}`` → ``'PyTorch (torch.nn), float64'``."""
    return ", ".join(label(v) for v in config.values())


def framework_differences(df: pd.DataFrame) -> pd.DataFrame:
    """|custom − torch| per dtype × engine × seed × fold × epoch in ``fig5_frameworks``.

    Columns: ``dtype, engine, seed, fold, epoch, custom, torch`` (their train losses),
    ``abs_diff`` (|Δ train loss|) and ``abs_diff_test`` (|Δ test error|). Only epochs both
    frameworks recorded with finite losses appear. Empty when one framework is absent.
    """
    cols = ["dtype", "engine", "seed", "fold", "epoch", "custom", "torch", "abs_diff"]
    cols.append("abs_diff_test")
    curves, _ = curve_rows(df, "fig5_frameworks")
    if not {"custom", "torch"} <= set(curves["framework"].unique()):
        return pd.DataFrame(columns=cols)
    index = [c for c in CONFIG_COLUMNS if c != "framework"] + ["seed", "fold", "epoch"]
    wide = curves.groupby([*index, "framework"])[["train_loss", "test_error"]].first()
    wide = wide.unstack("framework").dropna()
    loss = wide["train_loss"]
    test = wide["test_error"]
    finite = np.isfinite(loss["custom"]) & np.isfinite(loss["torch"])
    out = pd.DataFrame(
        {
            "custom": loss["custom"],
            "torch": loss["torch"],
            "abs_diff": (loss["custom"] - loss["torch"]).abs(),
            "abs_diff_test": (test["custom"] - test["torch"]).abs(),
        }
    )[finite]
    return out.reset_index()[cols]
