"""A study as data: its experiments and its claims, read from ``bench/conf/study/<name>.yaml``.

A claim is a `ClaimSpec`: its kind, the experiment and the metric it reads, the window of
epochs, the settings it pins, and its margin or target. The report's evaluator
(`bench.report.claims`) knows nothing else about a claim, and the rule text it prints is
generated from these fields. `load` reads a study file, types every field (an unknown key or a
wrong type is refused by OmegaConf's schema) and checks every claim against what its
experiment sweeps, before anything runs: a bad field gets one `StudyError` line naming the
file, the field and what is allowed.

Torch-free: the report and the study driver both read it.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from bench import registry
from bench.harness import catalog

STUDY_DIR = catalog.CONF_DIR / "study"
DEFAULT = "paper"
"""The paper's study: `make sweep` with no STUDY, writing ``reports/``."""

METRICS: dict[str, tuple[str, str]] = {
    "test_error": ("test error", "pp"),
    "train_error": ("train error", "pp"),
    "train_seconds": ("training time", "s"),
}
"""(words, unit) of each metric a claim may read: ``pp`` for a fraction shown in percentage
points, ``s`` for seconds."""

KINDS = ("better", "level", "similar")
OF = ("run", "mean")


class StudyError(ValueError):
    """A study file that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class ClaimSpec:
    """One claim: what it says, where, and how it is measured."""

    key: str
    claim: str
    where: str
    kind: str
    experiment: str
    column: str
    """The configuration column the claim compares along (``activation``, ``framework``)."""
    levels: tuple[str, ...]
    """better: the settings claimed lower; level: the settings whose runs the claim describes;
    similar: the two settings (difference levels[0] − levels[1])."""
    than: tuple[str, ...] = ()
    """better: the settings claimed higher (one part per pair)."""
    metric: str = "test_error"
    window: tuple[int, int | None] | None = None
    """None: the final epoch; (a, b): the mean over epochs a to b (b None: the final epoch)."""
    pins: tuple[tuple[str, str], ...] = ()
    """Configuration columns held at one value: (column, value) pairs."""
    per: str | None = None
    """A column whose every level is a part of its own (``model`` for the digits)."""
    target: float | None = None
    """level: the number claimed."""
    margin: float | None = None
    """similar: the equivalence margin; level of the mean: the band around the target."""
    of: str = "run"
    """level: ``run`` (one run's number: a prediction interval) or ``mean``."""

    def parts(self) -> list[tuple[str, str]]:
        """The (A, B) pairs a better claim compares, or (level, "") for the other kinds."""
        if self.kind == "better":
            return list(itertools.product(self.levels, self.than))
        if self.kind == "similar":
            return [(self.levels[0], self.levels[1])]
        return [(level, "") for level in self.levels]


@dataclass(frozen=True)
class Budget:
    """When an adaptive study stops adding replicates although a claim is undecided."""

    replicates: int = 100
    minutes: float = 60.0


@dataclass(frozen=True)
class Study:
    """One study: its experiments, how many replicates, and its claims."""

    name: str
    path: Path
    description: str
    experiments: tuple[str, ...]
    claims: tuple[ClaimSpec, ...]
    replicates: int | None = None
    """A fixed number of replicates; None: ``auto`` (batches until every claim is decided)."""
    batch: int = 10
    budget: Budget = field(default_factory=Budget)

    @property
    def adaptive(self) -> bool:
        return self.replicates is None


# -- the file's schema (types and keys; OmegaConf refuses the rest) ---------------------------
@dataclass
class _ClaimNode:
    key: str = MISSING
    claim: str = MISSING
    where: str = ""
    kind: str = MISSING
    experiment: str = MISSING
    column: str = MISSING
    levels: list[str] = MISSING
    than: list[str] = field(default_factory=list)
    metric: str = "test_error"
    window: list[Any] | None = None
    pins: dict[str, str] = field(default_factory=dict)
    per: str | None = None
    target: float | None = None
    margin: float | None = None
    of: str = "run"


@dataclass
class _BudgetNode:
    replicates: int = 100
    minutes: float = 60.0


@dataclass
class _StudyNode:
    description: str = ""
    experiments: Any = MISSING  # a list of experiment names, or "all"
    replicates: Any = "auto"
    batch: int = 10
    budget: _BudgetNode = field(default_factory=_BudgetNode)
    claims: list[Any] = field(default_factory=list)


def names() -> tuple[str, ...]:
    """Every study of ``bench/conf/study``."""
    return tuple(sorted(p.stem for p in STUDY_DIR.glob("*.yaml")))


def path_of(name: str) -> Path:
    """The file of study ``name`` (or ``name`` itself when it is a path to a YAML file)."""
    given = Path(name)
    if given.suffix in (".yaml", ".yml") and given.is_file():
        return given
    path = STUDY_DIR / f"{name}.yaml"
    if not path.is_file():
        raise StudyError(f"no study {name!r}: the studies are {', '.join(names())}")
    return path


def _allowed(values: Any) -> str:
    return ", ".join(str(v) for v in values) or "none"


class _Checker:
    """Checks one claim's fields; every problem is a StudyError naming the field."""

    def __init__(self, path: Path, index: int, node: DictConfig, experiments: tuple[str, ...]):
        self.path, self.index, self.node, self.experiments = path, index, node, experiments
        self.key = str(node.get("key", ""))

    def fail(self, field_name: str, problem: str) -> StudyError:
        where = f"claims[{self.index}]" + (f" ({self.key})" if self.key else "")
        return StudyError(f"{self.path}: {where}.{field_name}: {problem}")

    def one_of(self, field_name: str, value: object, allowed: Any) -> None:
        if value not in allowed:
            raise self.fail(field_name, f"{value!r} is not allowed; allowed: {_allowed(allowed)}")

    def spec(self) -> ClaimSpec:
        node = self.node
        self.one_of("kind", node.kind, KINDS)
        self.one_of("experiment", node.experiment, self.experiments)
        experiment = catalog.experiments()[node.experiment]
        expected = experiment.expected()
        self.one_of("column", node.column, tuple(expected))
        swept = expected[node.column]
        levels = tuple(str(v) for v in node.levels)
        than = tuple(str(v) for v in node.than)
        for name, values in (("levels", levels), ("than", than)):
            for value in values:
                self.one_of(name, value, swept)
        self.one_of("metric", node.metric, tuple(METRICS))
        self.one_of("of", node.of, OF)
        counts = {"better": (1, None), "level": (1, None), "similar": (2, 2)}[node.kind]
        if len(levels) < counts[0] or (counts[1] and len(levels) != counts[1]):
            need = "exactly 2" if counts[1] else "at least 1"
            raise self.fail("levels", f"a {node.kind} claim needs {need} level(s), not {levels}")
        if node.kind == "better" and not than:
            raise self.fail("than", "a better claim needs the settings claimed higher")
        if node.kind != "better" and than:
            raise self.fail("than", f"only a better claim has 'than' (this one is {node.kind})")
        if set(levels) & set(than):
            raise self.fail("than", f"{sorted(set(levels) & set(than))} on both sides")
        margin = node.margin
        needs_margin = node.kind == "similar" or (node.kind == "level" and node.of == "mean")
        if needs_margin and margin is None:
            raise self.fail("margin", f"a {node.kind} claim of the {node.of} needs a margin > 0")
        if margin is not None and not (math.isfinite(margin) and margin > 0):
            raise self.fail("margin", f"{margin} must be a finite number > 0")
        if node.kind == "level" and node.target is None:
            raise self.fail("target", "a level claim needs the number it claims")
        if node.target is not None and not math.isfinite(node.target):
            raise self.fail("target", f"{node.target} must be finite")
        if node.kind != "level" and node.target is not None:
            raise self.fail("target", f"only a level claim has a target (this one is {node.kind})")
        unit = METRICS[node.metric][1]
        if unit == "pp" and node.target is not None and not 0 <= node.target <= 1:
            raise self.fail("target", f"{node.target}: an error rate is a fraction in [0, 1]")
        pins = tuple((str(k), str(v)) for k, v in node.pins.items())
        for column, value in pins:
            self.one_of("pins", column, catalog.CONFIG_COLUMNS)
            known = expected.get(column) or (experiment.fixed().get(column),)
            known = tuple(v for v in known if v) or registry.levels(column)
            if value not in known:
                raise self.fail(f"pins.{column}", f"{value!r} is not allowed; allowed: "
                                f"{_allowed(known)}")  # fmt: skip
        if node.column in dict(pins):
            raise self.fail("pins", f"{node.column!r} is the column compared; it cannot be pinned")
        per = None if node.per is None else str(node.per)
        if per is not None:
            self.one_of("per", per, tuple(c for c in expected if c != node.column))
        return ClaimSpec(
            key=self.key,
            claim=str(node.claim),
            where=str(node.where),
            kind=str(node.kind),
            experiment=str(node.experiment),
            column=str(node.column),
            levels=levels,
            than=than,
            metric=str(node.metric),
            window=self.window(node.window),
            pins=pins,
            per=per,
            target=None if node.target is None else float(node.target),
            margin=None if margin is None else float(margin),
            of=str(node.of),
        )

    def window(self, window: Any) -> tuple[int, int | None] | None:
        if window is None:
            return None
        values = list(window)
        ok = len(values) == 2 and isinstance(values[0], int) and values[0] >= 0
        ok = ok and (values[1] is None or (isinstance(values[1], int) and values[1] >= values[0]))
        if not ok:
            raise self.fail(
                "window", f"{values}: allowed: [first epoch, last epoch] with 0 ≤ first ≤ last, "
                "or [first epoch, null] (to the final epoch); omit it for the final epoch"
            )  # fmt: skip
        return int(values[0]), None if values[1] is None else int(values[1])


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    key = next((ln.split(":", 1)[1].strip() for ln in lines if ln.strip().startswith("full_key")),
               "")  # fmt: skip
    return (f"{key}: " if key else "") + (lines[0] if lines else type(error).__name__)


_CLAIM_FIELDS = ", ".join(f.name for f in dataclasses.fields(_ClaimNode))


def _claim_node(path: Path, index: int, raw: Any) -> DictConfig:
    """One claim typed by the schema; an unknown key or a wrong type names ``claims[i]``."""
    where = f"{path}: claims[{index}]"
    if not OmegaConf.is_dict(raw):
        raise StudyError(f"{where}: a claim is a mapping of fields ({_CLAIM_FIELDS})")
    key = raw.get("key")
    where += f" ({key})" if key else ""
    for name in raw:
        if name not in _CLAIM_FIELDS.split(", "):
            raise StudyError(f"{where}.{name}: unknown field; allowed: {_CLAIM_FIELDS}")
    try:
        node = OmegaConf.merge(OmegaConf.structured(_ClaimNode), raw)
        OmegaConf.to_container(node, throw_on_missing=True)
    except OmegaConfBaseException as error:
        text = _first_line(error)
        name, _, problem = text.partition(": ")
        raise StudyError(f"{where}.{name}: {problem}" if problem else f"{where}: {text}") from None
    return node


def load(name: str = DEFAULT) -> Study:
    """Study ``name`` (a file of ``bench/conf/study``, or a path), typed and checked.

    Raises:
        StudyError: one line naming the file, the field and what is allowed.
    """
    path = path_of(name)
    try:
        node = OmegaConf.merge(OmegaConf.structured(_StudyNode), OmegaConf.load(path))
        OmegaConf.to_container(node, throw_on_missing=True)
    except (OmegaConfBaseException, OSError, ValueError) as error:
        raise StudyError(f"{path}: {_first_line(error)}") from None
    known = tuple(catalog.experiments())
    listed = node.experiments
    if listed == "all":
        listed = known
    elif isinstance(listed, str) or not OmegaConf.is_list(listed):
        raise StudyError(f"{path}: experiments: {listed!r}: allowed: a list of experiments "
                         f"({_allowed(known)}), or all")  # fmt: skip
    experiments = tuple(str(e) for e in listed)
    for index, experiment in enumerate(experiments):
        if experiment not in known:
            raise StudyError(f"{path}: experiments[{index}]: {experiment!r} is not an "
                             f"experiment; allowed: {_allowed(known)}")  # fmt: skip
    if not experiments:
        raise StudyError(f"{path}: experiments: a study needs at least one experiment")
    claims = [_Checker(path, i, _claim_node(path, i, c), experiments).spec()
              for i, c in enumerate(node.claims)]  # fmt: skip
    keys = [c.key for c in claims]
    for key in keys:
        if keys.count(key) > 1:
            raise StudyError(f"{path}: claims: the key {key!r} is used twice")
    replicates = _replicates(path, node.replicates)
    if node.batch < 2:
        raise StudyError(f"{path}: batch: {node.batch}: allowed: an integer ≥ 2")
    budget = Budget(int(node.budget.replicates), float(node.budget.minutes))
    if budget.replicates < node.batch or not budget.minutes > 0:
        raise StudyError(
            f"{path}: budget: {budget.replicates} replicates, {budget.minutes} minutes: "
            f"allowed: replicates ≥ batch ({node.batch}), minutes > 0"
        )
    return Study(path.stem, path, str(node.description), experiments, tuple(claims), replicates,
                 int(node.batch), budget)  # fmt: skip


def _replicates(path: Path, value: Any) -> int | None:
    if value == "auto":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 2:
        return value
    if isinstance(value, str) and value.isdigit() and int(value) >= 2:
        return int(value)
    raise StudyError(f"{path}: replicates: {value!r}: allowed: auto, or an integer ≥ 2")


STATE_FILE = "study.json"
"""Written into a study's report directory after every batch: its looks and why it stopped."""


def report_dir(name: str) -> Path:
    """Where a study's report goes: ``reports/`` for the paper's, ``reports/<name>/`` else."""
    return Path("reports") if name == DEFAULT else Path("reports") / name


def read_state(out: Path) -> dict[str, Any]:
    """The study's state file in ``out`` ({} when there is none or it is unreadable)."""
    try:
        state = json.loads((Path(out) / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}
