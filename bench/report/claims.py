"""A study's claims, each a specification decided from the results with its uncertainty.

A claim is data (`bench.study.ClaimSpec`, written in a study's YAML file): its kind, the
experiment and the metric it reads, the window of epochs, the settings it pins (engine, dtype,
any column), and its margin or target. This module is the generic evaluator; the rule text is
generated from those fields (`rule`), so what the report says and what the code does cannot
disagree. Three kinds:

- ``better``: settings A have a lower metric than settings B. Per replicate (the folds share
  their data, initial weights and batch order across the settings compared), the paired
  difference B − A; supported when the 95% interval of its mean lies above 0.
- ``level`` of a run (``of: run``): the number describes a single run ("Tanh gives about 22%").
  Supported when it lies inside the 95% prediction interval of one run's value
  (`stats.single_run`); the mean's interval is shown beside it. No band is added: the
  prediction interval already holds a single run's spread. Of the mean (``of: mean``): the
  mean's interval lies within target ± margin.
- ``similar``: two settings reach the same metric within ±margin: two one-sided tests (TOST) on
  the paired difference (`stats.equivalence`).

A claim made of several parts ("Adam *and* RMSprop beat SGD") is supported only when every part
is (intersection-union) and contradicted when any part is (`stats.combine`); its line shows its
weakest part. Across the whole report, the parts decided by a test of a mean are also adjusted
together by Holm's step-down (`verdict_holm`): the chance of any false verdict among them stays
at most 2.5% one-sided.

Two designs. Fixed (a study with ``replicates: N``): the intervals of one look at n, calibrated
on the claim's own replicates (`stats`). Sequential (``replicates: auto``; a
`sequential.Design`): the intervals are anytime-valid (`sequential`), so reading them after
every batch and stopping when decided keeps their error rates; `history` replays those looks
from the table, so the report says at how many replicates each claim was decided.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bench import study
from bench.report import memo, sequential, stats, views
from bench.report.sequential import Design
from bench.report.stats import NOT_EVALUATED
from bench.report.views import label
from bench.study import METRICS, ClaimSpec


def _names(values: Sequence[str]) -> str:
    names = [label(v) for v in values]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _amount(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:g} s"
    points = value * 100
    return f"{points:g} percentage point" + ("" if points == 1 else "s")


def _window(spec: ClaimSpec) -> str:
    if spec.window is None:
        return "at the final epoch"
    start, end = spec.window
    return f"averaged over epochs {start} to {end if end is not None else 'the final one'}"


def _pins(spec: ClaimSpec) -> str:
    if not spec.pins:
        return ""
    held = ", ".join(f"{views.COLUMN_TITLES.get(c, c).lower()} {label(v)}" for c, v in spec.pins)
    return f", {held}"


def method(design: Design | None = None) -> str:
    """The interval a claim's verdict reads: the fixed design's, or the sequential one's."""
    return stats.METHOD if design is None else sequential.METHOD


def rule(spec: ClaimSpec, design: Design | None = None) -> str:
    """The claim's rule in words, generated from its fields (and the design's interval)."""
    words, unit = METRICS[spec.metric]
    interval = method(design)
    source = f"`{spec.experiment}`{_pins(spec)}, {words} {_window(spec)}"
    each = f"; for each {views.COLUMN_TITLES.get(spec.per, spec.per).lower()}" if spec.per else ""
    if spec.kind == "better":
        pairs = "each pair" if len(spec.parts()) > 1 else "the pair"
        return (
            f"{source}: per replicate, {_names(spec.than)} minus {_names(spec.levels)} "
            f"({pairs}); supported when the 95% interval ({interval}) of the mean "
            f"difference lies above 0, contradicted when below{each}"
        )
    if spec.kind == "level" and spec.of == "mean":
        low, high = spec.target - spec.margin, spec.target + spec.margin
        amount = _amount(spec.margin, unit)
        shown = f"{spec.target:.0%}" if unit == "pp" else f"{spec.target:g} s"
        return (
            f"{source}: the mean of {_names(spec.levels)} (each) is {shown} within ±{amount}; "
            f"supported when the 95% interval ({interval}) of the mean lies inside "
            f"[{low:g}, {high:g}], contradicted when it lies outside{each}"
        )
    if spec.kind == "level":
        spend = (
            ""
            if design is None
            else " (at look k of the sequential design, at level 5%·6/(π²k²): the levels of all "
            "looks sum to 5%)"
        )
        return (
            f"{source}: the claimed {spec.target:.0%} is one run's number, so it is checked "
            f"against the 95% prediction interval of one run of {_names(spec.levels)} (for "
            f"each); supported when it lies inside even at the ends' own 95% bootstrap "
            f"uncertainty{spend}, contradicted when outside, inconclusive between; no band is "
            "added (the prediction interval already holds a single run's spread); the mean's 95% "
            "interval is shown beside it"
        )
    a, b = spec.levels
    return (
        f"{source}: per replicate, {label(a)} minus {label(b)}; equivalent within "
        f"±{_amount(spec.margin, unit)} by two one-sided tests at 2.5% each (TOST: the 95% "
        f"interval ({interval}) of the mean difference lies inside the band), "
        f"contradicted when the interval lies outside it{each}"
    )


CLAIMS: tuple[ClaimSpec, ...] = study.load(study.DEFAULT).claims
"""The paper's claims, in its order (``bench/conf/study/paper.yaml``)."""


class Missing(Exception):
    """A claim cannot be evaluated; the message says why."""


# -- the per-replicate numbers a claim reads ---------------------------------------------------
def replicate_table(df: pd.DataFrame, spec: ClaimSpec) -> pd.DataFrame:
    """The claim's metric per replicate: index (per level if any, seed, fold), one column per
    level of ``spec.column``; NaN where a replicate has no finite value (it diverged). Only the
    rows at the spec's pins; the final epoch, or the mean over its window of epochs.

    Computed once per table and claim (`memo`: the fixed design and the adaptive replay read
    the same tables); the frame returned is shared, never to be modified."""
    return memo.once(df, ("replicate_table", spec), lambda: _replicate_table(df, spec))


def _replicate_table(df: pd.DataFrame, spec: ClaimSpec) -> pd.DataFrame:
    pins = dict(spec.pins)
    curves, _ = views.curve_rows(df, spec.experiment, pin=pins)
    for column, value in pins.items():  # strictly: a pin absent from the results is a gap
        curves = curves[curves[column] == value]
    keys = [spec.column] + ([spec.per] if spec.per else [])
    final = views.final_rows(curves, keys)
    index = ([spec.per] if spec.per else []) + ["seed", "fold"]
    if spec.window is not None:
        start, end = spec.window
        last = int(final["epoch"].max()) if len(final) else 0
        end = last if end is None else end
        finished = final[[*keys, "seed", "fold"]]  # replicates that reached the end, finite
        window = curves[(curves["epoch"] >= start) & (curves["epoch"] <= end)]
        window = window.merge(finished, on=[*keys, "seed", "fold"])
        final = window.groupby([*keys, "seed", "fold"], as_index=False)[spec.metric].mean()
    return final.pivot_table(index=index, columns=spec.column, values=spec.metric, aggfunc="first")


def _require(table: pd.DataFrame, spec: ClaimSpec, levels: Sequence[str]) -> None:
    lacking = [label(v) for v in levels if v not in table.columns or table[v].notna().sum() == 0]
    if lacking:
        raise Missing(f"no finished replicate in {spec.experiment} for {', '.join(lacking)}")


# -- parts -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Part:
    """One measured part of a claim."""

    what: str
    kind: str
    verdict: str
    value: stats.Interval  # the mean (of the difference, or of one setting's runs)
    values: np.ndarray = field(repr=False)  # the per-replicate numbers behind it
    margin: float  # how far the claim-side end is from failing the rule (negative once it fails)
    unit: str = "pp"
    p_value: float = math.nan  # the one-sided p-value of the decision (Holm); NaN: no test
    p_better: stats.Interval | None = None
    prediction: tuple[float, float] | None = None  # level: one run's 95% prediction interval
    power: stats.Power | None = None
    calibration: stats.Calibration | None = None  # a mean's interval calibrated on its data

    def fmt(self, v: float) -> str:
        if self.unit == "s":
            return f"{v:.3g} s" if self.kind in ("level", "mean") else f"{v:+.3g} s"
        return f"{v:.1%}" if self.kind in ("level", "mean") else f"{v * 100:+.1f} pp"

    def text(self) -> str:
        mean = f"{self.fmt(self.value.estimate)} [{self.fmt(self.value.low)}, "
        mean += f"{self.fmt(self.value.high)}]"
        if self.prediction is not None:
            low, high = self.prediction
            return (
                f"{self.what}: one run in [{self.fmt(low)}, {self.fmt(high)}] (95% prediction), "
                f"mean {mean}, {self.value.n} runs"
            )
        share = self.p_better
        sides = (
            f", {share.estimate:.0%} of replicates on the claim's side [{share.low:.0%}, "
            f"{share.high:.0%}]"
            if share is not None and math.isfinite(share.low)
            else ""
        )
        return f"{self.what}: {mean}, {self.value.n} replicates{sides}"


def _power(value: stats.Interval, distance: float, toward: float) -> stats.Power:
    """The replicates that would decide a part, from its own interval: the interval narrows as
    1/√n, so the side that must clear the threshold (``toward``: −1 the low end, +1 the high
    end, 0 both) needs n · (its length / ``distance``)² replicates; ∞ when the estimate itself
    is on the threshold (``distance`` ≤ 0)."""
    below, above = value.estimate - value.low, value.high - value.estimate
    half = below if toward < 0 else above if toward > 0 else max(below, above)
    if not (math.isfinite(half) and value.n >= stats.MIN_FOLDS):
        return stats.Power(math.nan, math.nan, value.n)
    if distance <= 0:
        return stats.Power(math.inf, half, value.n)
    needed = max(stats.MIN_FOLDS, math.ceil(value.n * (half / distance) ** 2 - 1e-9))
    return stats.Power(float(needed), half, value.n)


def _paired(table: pd.DataFrame, spec: ClaimSpec, a: str, b: str) -> np.ndarray:
    both = table[[a, b]].dropna()
    diffs = (both[a] - both[b]).to_numpy(float)
    if len(diffs) < stats.MIN_FOLDS:
        raise Missing(
            f"{len(diffs)} paired replicate(s) of {label(a)} and {label(b)} in "
            f"{spec.experiment}; needs at least {stats.MIN_FOLDS}"
        )
    return diffs


def _decide(
    diffs: np.ndarray, design: Design | None, test: str, *bounds: float
) -> tuple[stats.Decision, stats.Calibration | None]:
    """The decision of ``test`` (above: bounds = (threshold,); within: (low, high)) on
    ``diffs``: calibrated on them in the fixed design, anytime-valid in the sequential one."""
    if design is not None:
        decision = sequential.decide(diffs, *bounds) if test == "above" else (
            sequential.within(diffs, *bounds))  # fmt: skip
        return decision, None
    calibration = stats.calibrate(diffs)
    if test == "above":
        return stats.decide(diffs, *bounds, calibration), calibration
    low, high = bounds
    if math.isclose(low, -high):  # a band around 0: the TOST of `stats.equivalence`
        return stats.equivalence(diffs, high, calibration), calibration
    centre = (low + high) / 2
    shifted = stats.equivalence(diffs - centre, (high - low) / 2, calibration)
    value = shifted.interval
    back = stats.Interval(value.estimate + centre, value.low + centre, value.high + centre, value.n)
    return stats.Decision(shifted.verdict, shifted.p_value, back), calibration


def _better(
    table: pd.DataFrame, spec: ClaimSpec, low: str, high: str, unit: str, design: Design | None
) -> Part:
    """Part "``low`` has a lower metric than ``high``": per replicate high − low > 0."""
    diffs = _paired(table, spec, high, low)
    decision, calibration = _decide(diffs, design, "above", 0.0)
    value = decision.interval
    return Part(
        f"{label(high)} − {label(low)}",
        spec.kind,
        decision.verdict,
        value,
        diffs,
        value.low,
        unit,
        decision.p_value,
        stats.probability_of_improvement(diffs),
        power=_power(value, abs(value.estimate), toward=-np.sign(value.estimate)),
        calibration=calibration,
    )


def _similar(
    table: pd.DataFrame, spec: ClaimSpec, what: str, unit: str, design: Design | None
) -> Part:
    """Part "levels[0] and levels[1] are within ±margin" (TOST on the paired difference)."""
    a, b = spec.levels
    diffs = _paired(table, spec, a, b)
    margin = float(spec.margin)
    tost, calibration = _decide(diffs, design, "within", -margin, margin)
    value = tost.interval
    p = tost.p_value
    if tost.verdict == stats.CONTRADICTED and design is None:  # outside: that side's test
        side = margin if value.estimate > 0 else -margin
        p = stats.decide(diffs, side, calibration).p_value
    inside = np.abs(diffs) <= margin
    return Part(
        what,
        spec.kind,
        tost.verdict,
        value,
        diffs,
        margin - max(abs(value.low), abs(value.high)),
        unit,
        p,
        stats.probability_of_improvement(np.where(inside, 1.0, -1.0)),
        power=_power(value, margin - abs(value.estimate), toward=0),
        calibration=calibration,
    )


def _mean_level(
    runs: np.ndarray, spec: ClaimSpec, level: str, unit: str, design: Design | None
) -> Part:
    """Part "the mean of ``level`` is target ± margin"."""
    target, margin = float(spec.target), float(spec.margin)
    decision, calibration = _decide(runs, design, "within", target - margin, target + margin)
    value = decision.interval
    return Part(
        label(level),
        "mean",
        decision.verdict,
        value,
        runs,
        margin - max(abs(value.low - target), abs(value.high - target)),
        unit,
        decision.p_value,
        power=_power(value, margin - abs(value.estimate - target), toward=0),
        calibration=calibration,
    )


def _level(
    table: pd.DataFrame, spec: ClaimSpec, level: str, unit: str, design: Design | None
) -> Part:
    """Part "one run of ``level`` gives about target": inside one run's prediction interval
    (or, ``of: mean``, the mean within target ± margin)."""
    runs = table[level].dropna().to_numpy(float)
    if len(runs) < stats.MIN_FOLDS:
        raise Missing(
            f"{len(runs)} finished run(s) of {label(level)}; needs at least {stats.MIN_FOLDS}"
        )
    if spec.of == "mean":
        return _mean_level(runs, spec, level, unit, design)
    ends = stats.CONFIDENCE if design is None else 1 - sequential.spent(design.look(len(runs)))
    single = stats.single_run(runs, float(spec.target), ends=ends)
    mean = stats.interval(runs)
    target = float(spec.target)
    low, high = single.low, single.high
    if unit == "pp":  # an error rate lies in [0, 1]: so does one run's (coverage unchanged)
        low, high = max(low, 0.0), min(high, 1.0)
    return Part(
        label(level),
        spec.kind,
        single.verdict,
        mean,
        runs,
        min(target - low, high - target),
        unit,
        prediction=(low, high),
    )


def measure(df: pd.DataFrame, spec: ClaimSpec, design: Design | None = None) -> list[Part]:
    """Every part of one claim, measured (raises Missing when it cannot be); ``design``: the
    sequential design's anytime-valid intervals instead of the fixed design's."""
    table = replicate_table(df, spec)
    unit = METRICS[spec.metric][1]
    groups: list[tuple[str, pd.DataFrame]] = [("", table)]
    if spec.per:
        present = table.index.get_level_values(spec.per).unique()
        if present.empty:
            raise Missing(f"no finished replicate in {spec.experiment}")
        groups = [
            (label(level), table.xs(level, level=spec.per))
            for level in views.level_order(spec.per, present)
        ]
    parts = []
    for name, group in groups:
        needed = {v for pair in spec.parts() for v in pair if v}
        _require(group, spec, sorted(needed, key=str))
        for a, b in spec.parts():
            if spec.kind == "better":
                part = _better(group, spec, a, b, unit, design)
            elif spec.kind == "similar":
                words = METRICS[spec.metric][0]
                part = _similar(group, spec, f"{words} {label(a)} − {label(b)}", unit, design)
            else:
                part = _level(group, spec, a, unit, design)
            parts.append(dataclasses.replace(part, what=f"{part.what}, {name}") if name else part)
    return parts


# -- claims ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Claim:
    """One claim of the paper and this run's verdict on it (its weakest part's numbers)."""

    key: str
    claim: str
    where: str
    rule: str
    verdict: str
    verdict_holm: str = NOT_EVALUATED
    estimate: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    pi_low: float = math.nan
    pi_high: float = math.nan
    n_folds: int = 0
    method: str = stats.METHOD
    coverage: float = math.nan
    coverage_nominal: float = math.nan
    p_value: float = math.nan
    p_holm: float = math.nan
    p_better: float = math.nan
    p_better_low: float = math.nan
    p_better_high: float = math.nan
    sd: float = math.nan
    half_width: float = math.nan
    replicates_needed: float = math.nan
    shares_replicates_with: str = ""
    design: str = "fixed"
    decided_at: float = math.nan
    stopped: str = ""
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
            holm = "" if self.verdict_holm == self.verdict else (
                f" Across the report's family (Holm): **{self.verdict_holm}**."
            )  # fmt: skip
            numbers = f"{self.n_folds} replicates{self._took()}. {self.data}.{holm}"
        return f"- **{self.verdict}**: {self.claim} ({self.where}). Rule: {self.rule}. {numbers}"

    def _took(self) -> str:
        if self.design == "fixed":
            return ""
        if math.isfinite(self.decided_at):
            return f" (decided at {self.decided_at:.0f}, anytime-valid)"
        return f" (undecided; {self.stopped})" if self.stopped else " (undecided)"


def _weakest(spec: ClaimSpec, parts: list[Part]) -> dict[str, object]:
    verdict = stats.combine([p.verdict for p in parts])
    weakest = min(parts, key=lambda p: p.margin)
    values = weakest.values
    out: dict[str, object] = {
        "verdict": verdict,
        "estimate": weakest.value.estimate,
        "ci_low": weakest.value.low,
        "ci_high": weakest.value.high,
        "n_folds": weakest.value.n,
        "p_value": weakest.p_value,
        "sd": float(np.std(values, ddof=1)) if len(values) > 1 else math.nan,
        "data": "; ".join(p.text() for p in parts),
    }
    if weakest.prediction is not None:
        out["pi_low"], out["pi_high"] = weakest.prediction
    if weakest.p_better is not None:
        share = weakest.p_better
        out |= {"p_better": share.estimate, "p_better_low": share.low, "p_better_high": share.high}
    if weakest.power is not None:
        out |= {"half_width": weakest.power.half_width, "replicates_needed": weakest.power.needed}
    return out


def _shared(spec: ClaimSpec, specs: Sequence[ClaimSpec]) -> str:
    """The other claims computed on this claim's replicates (the same experiment's runs)."""
    return ", ".join(c.key for c in specs if c.experiment == spec.experiment and c is not spec)


def _holm(measured: dict[str, list[Part]]) -> dict[str, tuple[str, float]]:
    """Each claim's verdict when every part tested (a mean's test: every kind but the single-run
    check) is adjusted together by Holm's step-down at one-sided 2.5%: a supported or
    contradicted part whose adjusted p-value exceeds 2.5% becomes inconclusive."""
    tested = [(key, i, p.p_value) for key, parts in measured.items() for i, p in enumerate(parts)
              if math.isfinite(p.p_value)]  # fmt: skip
    adjusted = stats.holm([p for _, _, p in tested])
    by_part = {(key, i): float(q) for (key, i, _), q in zip(tested, adjusted, strict=True)}
    out = {}
    for key, parts in measured.items():
        verdicts = []
        for i, part in enumerate(parts):
            q = by_part.get((key, i), math.nan)
            keep = not math.isfinite(q) or q <= stats.ALPHA
            decided = part.verdict in (stats.SUPPORTED, stats.CONTRADICTED)
            verdicts.append(part.verdict if keep or not decided else stats.INCONCLUSIVE)
        weakest = min(range(len(parts)), key=lambda i: parts[i].margin)
        out[key] = (stats.combine(verdicts), by_part.get((key, weakest), math.nan))
    return out


def _measure_all(
    df: pd.DataFrame, specs: Sequence[ClaimSpec], design: Design | None
) -> tuple[dict[str, list[Part]], dict[str, str]]:
    measured: dict[str, list[Part]] = {}
    missing: dict[str, str] = {}
    for spec in specs:
        try:
            measured[spec.key] = measure(df, spec, design)
        except Missing as why:
            missing[spec.key] = str(why)
    return measured, missing


def evaluate_claims(
    df: pd.DataFrame,
    specs: Sequence[ClaimSpec] = CLAIMS,
    design: Design | None = None,
    stopped: str = "",
) -> list[Claim]:
    """Decide every claim on a prepared results frame (`bench.report.views.prepare`): with the
    fixed design's intervals, or (``design``) the sequential design's, replaying its looks to
    say at how many replicates each claim was decided (``stopped``: why the study stopped)."""
    measured, missing = _measure_all(df, specs, design)
    holm = _holm(measured)
    final = {key: _verdict(key, measured, missing) for key in (spec.key for spec in specs)}
    took = decided_at(history(df, specs, design, final)) if design is not None else {}
    out = []
    for spec in specs:
        common = {"key": spec.key, "claim": spec.claim, "where": spec.where,
                  "rule": rule(spec, design), "shares_replicates_with": _shared(spec, specs),
                  "design": "fixed" if design is None else "sequential",
                  "method": method(design), "decided_at": took.get(spec.key, math.nan),
                  "stopped": stopped if design is not None else ""}  # fmt: skip
        if spec.key in missing:
            out.append(Claim(verdict=NOT_EVALUATED, data=missing[spec.key], **common))
            continue
        parts = measured[spec.key]
        found = [p.calibration for p in parts if p.calibration is not None]
        verdict_holm, p_holm = holm[spec.key]
        out.append(
            Claim(
                **common,
                **_weakest(spec, parts),
                verdict_holm=verdict_holm,
                p_holm=p_holm,
                coverage=min((c.coverage for c in found), default=math.nan),
                coverage_nominal=min((c.nominal_coverage for c in found), default=math.nan),
            )
        )
    return out


def at_most(df: pd.DataFrame, replicates: int) -> pd.DataFrame:
    """The table as it stood after ``replicates`` replicates per configuration: the folds
    below that number (failed-job rows, which have no fold, kept)."""
    return df[_held(df["fold"], replicates)]


def _held(fold: pd.Series, replicates: int) -> pd.Series:
    """The rows `at_most` keeps: below that fold, or no fold (a failed job's)."""
    return fold.isna() | (fold < replicates)


def history(
    df: pd.DataFrame,
    specs: Sequence[ClaimSpec],
    design: Design,
    final: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Every claim's verdict at every look of ``design`` that the table holds: one row per
    (replicates, key, verdict). Replicate k draws the same data, initial weights and batch
    order whatever the batch (from (seed, k)), so the looks of an adaptive run are replayed;
    in float32 a stacked program's rounding depends on how many models it holds (fig2's ReLU
    fold 1: 3.6% error in a stack of 2, 4.1% in one of 10 or 30), so an adaptive run's numbers
    can differ from the replay's by that rounding, as two engines' do. ``final``: the verdicts
    on the whole table, already computed, used for a look that holds every replicate."""
    folds = df["fold"].dropna()
    available = int(folds.max()) + 1 if len(folds) else 0
    # A claim reads its experiment's rows only: a look that holds the same rows of it as an
    # earlier look (an experiment with fewer replicates than the table's largest) has the same
    # verdict; looks only add rows, so the same number of rows is the same rows. A look that
    # holds all of them is the whole table for this claim: its replicate tables are computed.
    experiment = {spec: views.experiment_rows(df, spec.experiment, grid=True) for spec in specs}
    seen: dict[tuple[ClaimSpec, int], str] = {}
    rows = []
    for n in design.looks(available) if available else []:
        whole = final is not None and n >= available
        verdicts = final if whole else {}
        for spec in specs if not whole else ():
            every = experiment[spec]
            held = int(_held(every["fold"], n).sum())
            if (spec, held) not in seen:
                table = df if held == len(every) else at_most(every, n)
                seen[spec, held] = verdicts_at(table, [spec], design)[spec.key]
            verdicts[spec.key] = seen[spec, held]
        for key, verdict in verdicts.items():
            rows.append({"replicates": n, "key": key, "verdict": verdict})
    return pd.DataFrame(rows, columns=["replicates", "key", "verdict"])


def decided_at(looks: pd.DataFrame) -> dict[str, float]:
    """Per claim, the replicates of the first look from which it stayed decided (supported or
    contradicted) to the last; NaN when the last look left it undecided."""
    out: dict[str, float] = {}
    for key, group in looks.groupby("key", sort=False):
        decided = group["verdict"].isin([stats.SUPPORTED, stats.CONTRADICTED]).to_numpy()
        if not len(decided) or not decided[-1]:
            out[str(key)] = math.nan
            continue
        undecided = np.flatnonzero(~decided)
        first = undecided[-1] + 1 if len(undecided) else 0
        out[str(key)] = float(group["replicates"].to_numpy()[first])
    return out


DECIDED = (stats.SUPPORTED, stats.CONTRADICTED)


def verdicts_at(
    df: pd.DataFrame, specs: Sequence[ClaimSpec], design: Design | None
) -> dict[str, str]:
    """Each claim's verdict on this table (a look of a sequential design), by key."""
    measured, missing = _measure_all(df, specs, design)
    return {spec.key: _verdict(spec.key, measured, missing) for spec in specs}


def _verdict(key: str, measured: dict[str, list[Part]], missing: dict[str, str]) -> str:
    """A claim's verdict from its measured parts (not evaluated when it could not be)."""
    return NOT_EVALUATED if key in missing else stats.combine([p.verdict for p in measured[key]])


def claims_markdown(claims: list[Claim]) -> str:
    """One Markdown bullet per claim."""
    return "\n".join(c.line() for c in claims)


def _decided_claims(claims: list[Claim]) -> list[Claim]:
    return [c for c in claims if c.verdict != NOT_EVALUATED]


def method_markdown(claims: list[Claim]) -> str:
    """How the intervals are made, and their coverage measured on this run's own numbers."""
    text = (
        f"Intervals: {stats.METHOD}, the 95% interval of a mean chosen by a coverage study on "
        "distributions shaped like this project's per-replicate numbers (at least 94% at 30 "
        "replicates on every one, where the BCa bootstrap used before covered 86–90% at 10; "
        "the study is a test of the suite). Then calibrated on each claim's own replicates (a "
        "double bootstrap: Hall 1986, Beran 1987): the replicates, recentred so the truth is "
        "known, are resampled 2,000 times at their own n, and a side on which more than 3% of "
        "those intervals miss has its level lowered until at most 2.5% do; never raised."
    )
    found = [c for c in claims if math.isfinite(c.coverage)]
    if found:
        nominal = min(found, key=lambda c: c.coverage_nominal)
        calibrated = min(found, key=lambda c: c.coverage)
        sizes = ", ".join(map(str, sorted({c.n_folds for c in found})))
        before = np.mean([c.coverage_nominal for c in found])
        after = np.mean([c.coverage for c in found])
        text += (
            f" Measured on this run's own numbers (n = {sizes}; an independent simulation): "
            f"the uncalibrated 95% intervals cover {before:.1%} on average and "
            f"{nominal.coverage_nominal:.1%} at the lowest (`{nominal.key}`); the calibrated "
            f"ones used below cover {after:.1%} on average and {calibrated.coverage:.1%} at the "
            f"lowest (`{calibrated.key}`). The `coverage` and `coverage_nominal` columns of the "
            "CSV give each claim's."
        )
    return text


def multiplicity_markdown(claims: list[Claim]) -> str:
    """How many verdicts the report makes, and what Holm's adjustment changes."""
    decided = _decided_claims(claims)
    changed = [c for c in decided if c.verdict_holm != c.verdict]
    moved = (
        "; it changes " + ", ".join(f"`{c.key}` ({c.verdict} → {c.verdict_holm})" for c in changed)
        if changed
        else "; it changes none of them"
    )
    return (
        f"{len(claims)} claims, {len(decided)} evaluated. Each verdict is taken at 95% (2.5% on "
        f"each side): among claims that are false, at most "
        f"{stats.expected_false_verdicts(len(decided)):.2f} false verdicts are expected. Holm's "
        "step-down over every part tested (all but the single-run checks), at one-sided 2.5%, "
        "keeps the chance of any false verdict among them at most 2.5% (`verdict_holm` in the "
        f"CSV){moved}. A claim of several parts is supported only when every part is "
        "(intersection-union: no correction needed for that), and contradicted when any part "
        "is."
    )


def power_markdown(claims: list[Claim]) -> str:
    """Per claim: the spread observed, the replicates used, the interval's half-width, and the
    replicates a decision at the observed effect would need; the replicates it shares."""
    rows = []
    for c in claims:
        if c.verdict == NOT_EVALUATED:
            rows.append([f"`{c.key}`", "—", "—", "—", "—", c.shares_replicates_with or "—"])
            continue
        single = math.isfinite(c.pi_low)
        needed = (
            "— (one run's spread: more runs do not narrow it)"
            if single
            else "never (no effect to resolve)"
            if not math.isfinite(c.replicates_needed)
            else f"{c.replicates_needed:.0f}"
        )
        rows.append(
            [
                f"`{c.key}`",
                str(c.n_folds),
                f"{c.sd:.3g}",
                "—" if single else f"{c.half_width:.3g}",
                needed,
                c.shares_replicates_with or "—",
            ]
        )
    head = ["claim", "replicates", "sd", "95% half-width", "replicates to decide",
            "shares its replicates with"]  # fmt: skip
    return pd.DataFrame(rows, columns=head).to_markdown(index=False)


COLUMNS = [
    "key",
    "verdict",
    "verdict_holm",
    "estimate",
    "ci_low",
    "ci_high",
    "pi_low",
    "pi_high",
    "n_folds",
    "method",
    "coverage",
    "coverage_nominal",
    "p_value",
    "p_holm",
    "p_better",
    "p_better_low",
    "p_better_high",
    "sd",
    "half_width",
    "replicates_needed",
    "shares_replicates_with",
    "design",
    "decided_at",
    "stopped",
    "claim",
    "where",
    "rule",
    "data",
]


def claims_frame(claims: list[Claim]) -> pd.DataFrame:
    """The claims as a table (for ``claims.csv``)."""
    return pd.DataFrame([{c: getattr(x, c) for c in COLUMNS} for x in claims], columns=COLUMNS)


def replay_markdown(fixed: Sequence[Claim], replayed: Sequence[Claim], design: Design) -> str:
    """Each claim's fixed-design verdict beside the one the adaptive design reaches on the same
    replicates (looks every ``design.batch``), and at how many it decided; every difference is
    explained by the replicates."""
    rows = []
    for a, b in zip(fixed, replayed, strict=True):
        if b.verdict in DECIDED:
            why = (
                f"the same verdict from {b.decided_at:.0f} of {b.n_folds} replicates"
                if a.verdict == b.verdict
                else f"decided at {b.decided_at:.0f}"
            )
        elif a.verdict in DECIDED:
            why = (
                f"undecided at {b.n_folds} replicates: the anytime-valid interval (for one "
                "run's number, the level spent at this look) is wider than the fixed one at "
                "the same n, the price of looking after every batch; more batches may decide it"
            )
        else:
            why = f"undecided by both at {b.n_folds} replicates"
        rows.append([f"`{a.key}`", a.verdict, b.verdict, why])
    head = ["claim", "fixed design", f"adaptive (batches of {design.batch})", "why"]
    return pd.DataFrame(rows, columns=head).to_markdown(index=False)


def decisions_markdown(claims: Sequence[Claim], batch: int) -> str:
    """An adaptive study's table: each claim's verdict, the replicates it took, the budget."""
    rows = []
    for c in claims:
        took = f"{c.decided_at:.0f}" if math.isfinite(c.decided_at) else "—"
        spent = "yes" if c.verdict not in DECIDED and c.stopped.startswith("budget") else "no"
        rows.append([f"`{c.key}`", c.verdict, str(c.n_folds), took, spent])
    head = ["claim", "verdict", "replicates run", f"decided at (looks every {batch})",
            "budget ran out"]  # fmt: skip
    return pd.DataFrame(rows, columns=head).to_markdown(index=False)
