"""The paper's claims, each decided from the results by a stated rule.

A claim is *supported* when its rule holds on this run's final-epoch numbers, *not supported* when
it does not, and *not evaluated* when a configuration the rule needs has no finished fold. Every
rule compares means over folds at the final epoch (`bench.views.final_rows`), so one run with
different data flips the verdict without anyone editing a line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from bench.report import tables, views
from bench.report.views import EXPERIMENTS, LEVELS, label

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
NOT_EVALUATED = "not evaluated"

ABOUT = 0.05
"""'About x% error' holds when the final mean test error is within ±5 percentage points of x."""
SIMILAR_ACCURACY = 0.01
"""'Similar accuracy' holds when the mean test accuracies differ by at most 1 percentage point."""


@dataclass(frozen=True)
class Claim:
    """One claim of the paper and this run's verdict on it."""

    key: str
    claim: str
    where: str
    rule: str
    status: str
    data: str

    def line(self) -> str:
        """The Markdown bullet for the README."""
        return (
            f"- **{self.status}**: {self.claim} ({self.where}). "
            f"Rule: {self.rule}. Data: {self.data}."
        )


def _final_means(df: pd.DataFrame, name: str, metric: str = "test_error") -> dict[str, float]:
    """Mean over finished folds of ``metric`` at the final epoch, per level of the swept column."""
    column = EXPERIMENTS[name].swept[0]
    curves, _ = views.curve_rows(df, name)
    final = views.final_rows(curves, [column])
    return final.groupby(column)[metric].mean().to_dict()


def _values(means: dict[str, float], levels: list[str] | tuple[str, ...]) -> str:
    return ", ".join(f"{label(v)} {means[v]:.3f}" for v in levels if v in means)


def _missing(name: str, means: dict[str, float], needed: tuple[str, ...]) -> str | None:
    lacking = [label(v) for v in needed if v not in means]
    if not lacking:
        return None
    return f"no finished fold in {name} for {', '.join(lacking)}"


def _verdict(holds: bool) -> str:
    return SUPPORTED if holds else NOT_SUPPORTED


ClaimRule = Callable[[pd.DataFrame], tuple[str, str]]


@dataclass(frozen=True)
class ClaimSpec:
    """A claim, where the paper makes it, its rule in words, and the function that applies it."""

    key: str
    claim: str
    where: str
    rule: str
    decide: ClaimRule


def _tanh_worst(df: pd.DataFrame) -> tuple[str, str]:
    needed = LEVELS["activation"]
    means = _final_means(df, "fig2_activations")
    if lacking := _missing("fig2_activations", means, needed):
        return NOT_EVALUATED, lacking
    worst = max(needed, key=lambda v: means[v])
    return _verdict(worst == "tanh"), _values(means, needed) + f"; highest: {label(worst)}"


def _tanh_22(df: pd.DataFrame) -> tuple[str, str]:
    means = _final_means(df, "fig2_activations")
    if lacking := _missing("fig2_activations", means, ("tanh",)):
        return NOT_EVALUATED, lacking
    return _verdict(abs(means["tanh"] - 0.22) <= ABOUT), _values(means, ("tanh",))


def _others_10(df: pd.DataFrame) -> tuple[str, str]:
    needed = ("leaky_relu", "elu", "relu")
    means = _final_means(df, "fig2_activations")
    if lacking := _missing("fig2_activations", means, needed):
        return NOT_EVALUATED, lacking
    holds = all(abs(means[v] - 0.10) <= ABOUT for v in needed)
    return _verdict(holds), _values(means, needed)


def _adaptive_beat_sgd(df: pd.DataFrame) -> tuple[str, str]:
    needed = ("sgd", "adam", "rmsprop")
    means = _final_means(df, "fig3_optimizers")
    if lacking := _missing("fig3_optimizers", means, needed):
        return NOT_EVALUATED, lacking
    holds = means["adam"] < means["sgd"] and means["rmsprop"] < means["sgd"]
    return _verdict(holds), _values(means, LEVELS["optimizer"])


def _bce_faster(df: pd.DataFrame) -> tuple[str, str]:
    curves, _ = views.curve_rows(df, "fig4_losses")
    means = _final_means(df, "fig4_losses")
    if lacking := _missing("fig4_losses", means, ("mse", "bce")):
        return NOT_EVALUATED, lacking
    last = int(views.final_rows(curves, ["loss"]).groupby("loss")["epoch"].max().min())
    window = curves[(curves["epoch"] >= 1) & (curves["epoch"] <= last)]
    curve = window.groupby(["loss", "epoch"])["test_error"].mean()
    area = curve.groupby("loss").mean()
    data = f"BCE {area['bce']:.3f}, MSE {area['mse']:.3f} over epochs 1–{last}"
    return _verdict(area["bce"] < area["mse"]), data


def _table3_stats(df: pd.DataFrame) -> pd.DataFrame | None:
    t = tables.table3(df)
    ours = t[t["source"] == "this run"].set_index("framework")
    return ours if (ours["n_folds"] > 0).all() else None


def _table3_missing(df: pd.DataFrame) -> str:
    t = tables.table3(df)
    lacking = t[(t["source"] == "this run") & (t["n_folds"] == 0)]["framework"]
    names = ", ".join(label(f) for f in lacking)
    return f"no finished float32 fold in fig5_frameworks for {names}"


def _torch_faster(df: pd.DataFrame) -> tuple[str, str]:
    s = _table3_stats(df)
    if s is None:
        return NOT_EVALUATED, _table3_missing(df)
    custom, torch = s.loc["custom", "time_s_mean"], s.loc["torch", "time_s_mean"]
    data = f"PyTorch {torch:.3f} s, custom {custom:.3f} s (ratio custom/torch {custom / torch:.2f})"
    return _verdict(torch < custom), data


def _similar_accuracy(df: pd.DataFrame) -> tuple[str, str]:
    s = _table3_stats(df)
    if s is None:
        return NOT_EVALUATED, _table3_missing(df)
    custom, torch = s.loc["custom", "test_acc_mean"], s.loc["torch", "test_acc_mean"]
    data = f"custom {custom:.4f}, PyTorch {torch:.4f}, difference {abs(custom - torch):.4f}"
    return _verdict(abs(custom - torch) <= SIMILAR_ACCURACY), data


def _torch_train_better(df: pd.DataFrame) -> tuple[str, str]:
    s = _table3_stats(df)
    if s is None:
        return NOT_EVALUATED, _table3_missing(df)
    custom, torch = s.loc["custom", "train_acc_mean"], s.loc["torch", "train_acc_mean"]
    return _verdict(torch > custom), f"PyTorch {torch:.4f}, custom {custom:.4f}"


CLAIMS: tuple[ClaimSpec, ...] = (
    ClaimSpec(
        "tanh_worst",
        "Tanh is the worst activation",
        "Sec. III-B, Fig. 2",
        "Tanh's final mean test error is the highest of the four activations",
        _tanh_worst,
    ),
    ClaimSpec(
        "tanh_22",
        "Tanh gives an average error rate of about 22%",
        "Sec. III-B, Fig. 2",
        f"Tanh's final mean test error is within ±{ABOUT * 100:g} percentage points of 22%",
        _tanh_22,
    ),
    ClaimSpec(
        "others_10",
        "LeakyReLU, ELU and ReLU reach about 10% error",
        "Sec. III-B, Fig. 2",
        f"each one's final mean test error is within ±{ABOUT * 100:g} percentage points of 10%",
        _others_10,
    ),
    ClaimSpec(
        "adaptive_beat_sgd",
        "Adam and RMSprop beat SGD",
        "Sec. III-B, Fig. 3",
        "the final mean test errors of Adam and of RMSprop are both lower than SGD's",
        _adaptive_beat_sgd,
    ),
    ClaimSpec(
        "bce_faster",
        "BCE converges faster than MSE",
        "Sec. III-B, Fig. 4",
        "the fold-mean test error averaged over all epochs after the first update (the area "
        "under the error curve) is lower for BCE than for MSE",
        _bce_faster,
    ),
    ClaimSpec(
        "torch_faster",
        "PyTorch is faster than the custom framework",
        "Table III",
        "PyTorch's mean training time at the last epoch (float32) is lower than the custom "
        "framework's",
        _torch_faster,
    ),
    ClaimSpec(
        "similar_accuracy",
        "The custom framework and PyTorch reach similar accuracy",
        "Sec. III-B, Fig. 5, Table III",
        f"their mean test accuracies at the last epoch (float32) differ by at most "
        f"{SIMILAR_ACCURACY * 100:g} percentage point",
        _similar_accuracy,
    ),
    ClaimSpec(
        "torch_train_better",
        "PyTorch is slightly better than the custom framework on the train set",
        "Sec. III-B, Table III",
        "PyTorch's mean train accuracy at the last epoch (float32) is higher than the custom "
        "framework's",
        _torch_train_better,
    ),
)
"""Every claim the report checks, in the paper's order."""


def evaluate_claims(df: pd.DataFrame) -> list[Claim]:
    """Decide every claim on a prepared results frame (`bench.views.prepare`)."""
    out = []
    for spec in CLAIMS:
        status, data = spec.decide(df)
        if status == NOT_EVALUATED:
            status = f"{NOT_EVALUATED} (data missing)"
        out.append(Claim(spec.key, spec.claim, spec.where, spec.rule, status, data))
    return out


def claims_markdown(claims: list[Claim]) -> str:
    """One Markdown bullet per claim."""
    return "\n".join(c.line() for c in claims)


def claims_frame(claims: list[Claim]) -> pd.DataFrame:
    """The claims as a table (for ``claims.csv``)."""
    cols = ["key", "status", "claim", "where", "rule", "data"]
    return pd.DataFrame([{c: getattr(x, c) for c in cols} for x in claims], columns=cols)
