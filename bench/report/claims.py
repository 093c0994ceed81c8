"""The paper's claims, each decided from the results with its uncertainty.

Every claim is a statement about a quantity measured per fold: a paired difference between two
settings on the same folds ("Adam beats SGD": SGD's final test error minus Adam's), or one
setting's value ("Tanh gives about 22% error"). The claim gets the mean over folds, its 95%
bootstrap interval, the share of folds on the claim's side, and a verdict from the interval
(`bench.report.stats`): supported, contradicted, inconclusive, or not evaluated with the reason
(fewer than 2 folds, or a setting missing). A claim made of several parts ("Adam *and* RMSprop
beat SGD") holds when every part does; its line shows the weakest part's numbers.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.report import stats, views
from bench.report.stats import NOT_EVALUATED
from bench.report.views import label

ABOUT = 0.05
"""'About x% error' holds when the mean's interval lies within ±5 percentage points of x."""
SIMILAR_ACCURACY = 0.01
"""'Similar accuracy' holds when the interval of the mean accuracy difference lies within ±1
percentage point."""


@dataclass(frozen=True)
class Part:
    """One measured part of a claim: its interval, verdict, the share of folds on the claim's
    side, and its margin (how far the interval's claim-side end is from failing the rule;
    negative once it fails)."""

    what: str
    value: stats.Interval
    verdict: str
    p_better: float
    margin: float
    difference: bool = True  # a difference between settings (signed) or a level
    unit: str = "pp"  # "pp": a fraction shown in percentage points; "s": seconds

    def fmt(self, v: float) -> str:
        if self.unit == "s":
            return f"{v:+.3g} s" if self.difference else f"{v:.3g} s"
        return f"{v * 100:+.1f} pp" if self.difference else f"{v:.1%}"

    def text(self) -> str:
        head = f"{self.what}: {self.fmt(self.value.estimate)}"
        return (
            f"{head} [{self.fmt(self.value.low)}, {self.fmt(self.value.high)}], "
            f"{self.p_better * self.value.n:.0f}/{self.value.n} folds"
        )


@dataclass(frozen=True)
class Claim:
    """One claim of the paper and this run's verdict on it."""

    key: str
    claim: str
    where: str
    rule: str
    verdict: str
    estimate: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    n_folds: int = 0
    p_better: float = math.nan
    data: str = ""

    @property
    def status(self) -> str:
        """The verdict (kept under the name earlier reports used)."""
        return self.verdict

    def line(self) -> str:
        """The Markdown bullet for the README."""
        if self.verdict == NOT_EVALUATED:
            numbers = f"Not evaluated: {self.data}."
        else:
            numbers = (
                f"Estimate {self.estimate:+.4f}, 95% CI [{self.ci_low:+.4f}, {self.ci_high:+.4f}], "
                f"{self.n_folds} folds, on the claim's side in {self.p_better:.0%} of folds. "
                f"Data: {self.data}."
            )
        return f"- **{self.verdict}**: {self.claim} ({self.where}). Rule: {self.rule}. {numbers}"


def _decide(parts: Sequence[Part], data: str = "") -> tuple[str, dict[str, object]]:
    """A claim's verdict and the numbers shown: the weakest part's (the one whose interval's
    claim-side end is nearest to failing)."""
    verdict = stats.combine([p.verdict for p in parts])
    weakest = min(parts, key=lambda p: p.margin)
    return verdict, {
        "data": data or "; ".join(p.text() for p in parts),
        "estimate": weakest.value.estimate,
        "ci_low": weakest.value.low,
        "ci_high": weakest.value.high,
        "n_folds": weakest.value.n,
        "p_better": weakest.p_better,
    }


class Missing(Exception):
    """A claim cannot be evaluated; the message says why."""


# -- the per-fold numbers a claim needs ----------------------------------------------------------
def per_fold(
    df: pd.DataFrame,
    name: str,
    column: str,
    metric: str = "test_error",
    pin: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Final-epoch ``metric`` of one experiment: one row per (seed, fold), one column per level
    of ``column``, NaN where a fold has no finite final row (it diverged)."""
    curves, _ = views.curve_rows(df, name, pin)
    final = views.final_rows(curves, [column])
    return final.pivot_table(index=["seed", "fold"], columns=column, values=metric, aggfunc="first")


def _require(table: pd.DataFrame, name: str, levels: Sequence[str]) -> None:
    lacking = [label(v) for v in levels if v not in table.columns or table[v].notna().sum() == 0]
    if lacking:
        raise Missing(f"no finished fold in {name} for {', '.join(lacking)}")


def _pairs(table: pd.DataFrame, a: str, b: str) -> np.ndarray:
    """Per-fold ``a − b`` over the folds where both finished."""
    both = table[[a, b]].dropna()
    return (both[a] - both[b]).to_numpy(float)


def better(table: pd.DataFrame, worse: str, better_: str, what: str) -> Part:
    """Part "``better_`` has a lower value than ``worse``": per-fold worse − better > 0."""
    diffs = _pairs(table, worse, better_)
    if len(diffs) < stats.MIN_FOLDS:
        raise Missing(f"{len(diffs)} paired fold(s) of {label(worse)} and {label(better_)}; "
                      f"needs at least {stats.MIN_FOLDS}")  # fmt: skip
    value = stats.interval(diffs)
    return Part(what, value, stats.greater_than(value), float(np.mean(diffs > 0)), value.low)


def about(values: np.ndarray, target: float, what: str) -> Part:
    """Part "the mean is about ``target``" (within ±ABOUT)."""
    values = values[~np.isnan(values)]
    if len(values) < stats.MIN_FOLDS:
        raise Missing(f"{len(values)} finished fold(s); needs at least {stats.MIN_FOLDS}")
    value = stats.interval(values)
    low, high = target - ABOUT, target + ABOUT
    share = float(np.mean(np.abs(values - target) <= ABOUT))
    margin = min(value.low - low, high - value.high)
    return Part(what, value, stats.within(value, low, high), share, margin, difference=False)


# -- the claims ---------------------------------------------------------------------------------
def _tanh_worst(df: pd.DataFrame) -> list[Part]:
    table = per_fold(df, "fig2_activations", "activation")
    others = ["relu", "leaky_relu", "elu"]  # the paper's other activations (Figure 2)
    _require(table, "fig2_activations", ["tanh", *others])
    return [better(table, "tanh", a, f"Tanh − {label(a)}") for a in others]


def _tanh_22(df: pd.DataFrame) -> list[Part]:
    table = per_fold(df, "fig2_activations", "activation")
    _require(table, "fig2_activations", ["tanh"])
    return [about(table["tanh"].to_numpy(float), 0.22, "Tanh")]


def _others_10(df: pd.DataFrame) -> list[Part]:
    table = per_fold(df, "fig2_activations", "activation")
    levels = ("leaky_relu", "elu", "relu")
    _require(table, "fig2_activations", levels)
    return [about(table[a].to_numpy(float), 0.10, label(a)) for a in levels]


def _adaptive_beat_sgd(experiment: str) -> Callable[[pd.DataFrame], list[Part]]:
    def decide(df: pd.DataFrame) -> list[Part]:
        table = per_fold(df, experiment, "optimizer")
        _require(table, experiment, ("sgd", "adam", "rmsprop"))
        return [better(table, "sgd", o, f"SGD − {label(o)}") for o in ("adam", "rmsprop")]

    return decide


def _bce_faster(df: pd.DataFrame) -> list[Part]:
    curves, _ = views.curve_rows(df, "fig4_losses")
    final = views.final_rows(curves, ["loss"])
    if not {"mse", "bce"} <= set(final["loss"]):
        raise Missing("no finished fold in fig4_losses for " + ", ".join(
            label(v) for v in ("mse", "bce") if v not in set(final["loss"])))  # fmt: skip
    last = int(final.groupby("loss")["epoch"].max().min())
    window = curves[(curves["epoch"] >= 1) & (curves["epoch"] <= last)]
    area = window.pivot_table(
        index=["seed", "fold"], columns="loss", values="test_error", aggfunc="mean"
    )
    return [better(area, "mse", "bce", f"MSE − BCE mean test error over epochs 1–{last}")]


def _table3_folds(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    # Table III's meaning: one model trained alone (the sequential engine), float32
    pin = {"dtype": "float32", "engine": "sequential"}
    curves, _ = views.curve_rows(df, "fig5_frameworks", pin=pin)
    curves = curves[(curves["dtype"] == "float32") & (curves["engine"] == "sequential")]
    final = views.final_rows(curves, ["framework"])
    table = final.pivot_table(
        index=["seed", "fold"], columns="framework", values=metric, aggfunc="first"
    )
    _require(table, "fig5_frameworks (float32)", ("custom", "torch"))
    return table


def _torch_faster(df: pd.DataFrame) -> list[Part]:
    table = _table3_folds(df, "train_seconds")
    part = better(table, "custom", "torch", "custom − PyTorch training time")
    return [dataclasses.replace(part, unit="s")]


def _similar_accuracy(df: pd.DataFrame) -> list[Part]:
    return [_accuracy_difference(_table3_folds(df, "test_error"), "accuracy custom − PyTorch")]


def _similar_accuracy_digits(df: pd.DataFrame) -> list[Part]:
    curves, _ = views.curve_rows(df, "digits")
    final = views.final_rows(curves, ["model", "framework"])
    if final.empty:
        raise Missing("no finished fold in digits")
    parts = []
    for model in views.level_order("model", final["model"].unique()):
        table = final[final["model"] == model].pivot_table(
            index=["seed", "fold"], columns="framework", values="test_error", aggfunc="first"
        )
        _require(table, f"digits ({label(model)})", ("custom", "torch"))
        parts.append(_accuracy_difference(table, f"accuracy custom − PyTorch, {label(model)}"))
    return parts


def _accuracy_difference(table: pd.DataFrame, what: str) -> Part:
    """Part "custom and torch reach similar accuracy": the interval of the mean per-fold
    difference within ±SIMILAR_ACCURACY."""
    diffs = _pairs(table, "torch", "custom")  # error(torch) − error(custom) = Δ accuracy
    if len(diffs) < stats.MIN_FOLDS:
        raise Missing(f"{len(diffs)} paired fold(s); needs at least {stats.MIN_FOLDS}")
    value = stats.interval(diffs)
    verdict = stats.within(value, -SIMILAR_ACCURACY, SIMILAR_ACCURACY)
    share = float(np.mean(np.abs(diffs) <= SIMILAR_ACCURACY))
    margin = SIMILAR_ACCURACY - max(abs(value.low), abs(value.high))
    return Part(what, value, verdict, share, margin)


def _torch_train_better(df: pd.DataFrame) -> list[Part]:
    table = _table3_folds(df, "train_error")
    return [better(table, "custom", "torch", "PyTorch − custom train accuracy")]


@dataclass(frozen=True)
class ClaimSpec:
    """A claim, where the paper makes it, its rule in words, and the function measuring it."""

    key: str
    claim: str
    where: str
    rule: str
    measure: Callable[[pd.DataFrame], list[Part]]

    def decide(self, df: pd.DataFrame) -> tuple[str, dict[str, object]]:
        try:
            parts = self.measure(df)
        except Missing as why:
            return NOT_EVALUATED, {"data": str(why)}
        return _decide(parts)


BETTER = "the 95% interval of the mean per-fold difference lies above 0"
CLAIMS: tuple[ClaimSpec, ...] = (
    ClaimSpec(
        "tanh_worst",
        "Tanh is the worst activation",
        "Sec. III-B, Fig. 2",
        f"for each other activation, Tanh's final test error minus its: {BETTER}",
        _tanh_worst,
    ),
    ClaimSpec(
        "tanh_22",
        "Tanh gives an average error rate of about 22%",
        "Sec. III-B, Fig. 2",
        f"the 95% interval of Tanh's mean final test error lies within 22% ± {ABOUT * 100:g} "
        "percentage points",
        _tanh_22,
    ),
    ClaimSpec(
        "others_10",
        "LeakyReLU, ELU and ReLU reach about 10% error",
        "Sec. III-B, Fig. 2",
        f"for each, the 95% interval of the mean final test error lies within 10% ± "
        f"{ABOUT * 100:g} percentage points",
        _others_10,
    ),
    ClaimSpec(
        "adaptive_beat_sgd",
        "Adam and RMSprop beat SGD (hand-picked learning rates)",
        "Sec. III-B, Fig. 3",
        f"SGD's final test error minus Adam's, and minus RMSprop's, at the paper's learning "
        f"rates: {BETTER}",
        _adaptive_beat_sgd("fig3_optimizers"),
    ),
    ClaimSpec(
        "adaptive_beat_sgd_tuned",
        "Adam and RMSprop beat SGD (learning rates tuned on a validation split)",
        "Sec. III-B, Fig. 3",
        f"the same at each optimizer's learning rate chosen on the validation split: {BETTER}",
        _adaptive_beat_sgd("fig3_tuned"),
    ),
    ClaimSpec(
        "bce_faster",
        "BCE converges faster than MSE",
        "Sec. III-B, Fig. 4",
        f"per fold, the test error averaged over all epochs after the first update (the area "
        f"under the error curve), MSE's minus BCE's: {BETTER}",
        _bce_faster,
    ),
    ClaimSpec(
        "torch_faster",
        "PyTorch is faster than the custom framework",
        "Table III",
        f"per fold, the custom framework's training time minus PyTorch's (float32): {BETTER}",
        _torch_faster,
    ),
    ClaimSpec(
        "similar_accuracy",
        "The custom framework and PyTorch reach similar accuracy",
        "Sec. III-B, Fig. 5, Table III",
        f"the 95% interval of the mean per-fold test accuracy difference (float32) lies within "
        f"±{SIMILAR_ACCURACY * 100:g} percentage point",
        _similar_accuracy,
    ),
    ClaimSpec(
        "similar_accuracy_digits",
        "The custom framework and PyTorch reach similar accuracy, on a real image task",
        "beyond the paper: digits, MLP and CNN (Figure 6, Table IV)",
        f"for each model, the 95% interval of the mean per-fold test accuracy difference lies "
        f"within ±{SIMILAR_ACCURACY * 100:g} percentage point",
        _similar_accuracy_digits,
    ),
    ClaimSpec(
        "torch_train_better",
        "PyTorch is slightly better than the custom framework on the train set",
        "Sec. III-B, Table III",
        f"per fold, PyTorch's train accuracy minus the custom framework's (float32): {BETTER}",
        _torch_train_better,
    ),
)
"""Every claim the report checks, in the paper's order."""


def evaluate_claims(df: pd.DataFrame) -> list[Claim]:
    """Decide every claim on a prepared results frame (`bench.report.views.prepare`)."""
    out = []
    for spec in CLAIMS:
        verdict, numbers = spec.decide(df)
        out.append(Claim(spec.key, spec.claim, spec.where, spec.rule, verdict, **numbers))
    return out


def claims_markdown(claims: list[Claim]) -> str:
    """One Markdown bullet per claim."""
    return "\n".join(c.line() for c in claims)


COLUMNS = [
    "key",
    "verdict",
    "estimate",
    "ci_low",
    "ci_high",
    "n_folds",
    "p_better",
    "claim",
    "where",
    "rule",
    "data",
]


def claims_frame(claims: list[Claim]) -> pd.DataFrame:
    """The claims as a table (for ``claims.csv``)."""
    return pd.DataFrame([{c: getattr(x, c) for c in COLUMNS} for x in claims], columns=COLUMNS)
