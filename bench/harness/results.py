"""The one definition of a job's ``result.json``: written atomically by the job after every fold,
read strictly by the resume check and by collect.

A job's file holds its configuration, the versions of the code that ran it, its status and, per
framework and fold, one record per epoch. ``status`` is ``running`` until the last fold ends,
then ``ok``, ``diverged`` (some fold's loss became NaN/inf) or ``failed`` (an error, kept in
``error``). A killed job leaves a ``running`` file holding every fold it finished; it counts as
finished only when it holds exactly the configured frameworks, folds and epochs.

Torch-free: collect and the report read results without importing torch.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import json
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import atomic

RESULT_FILE = "result.json"
SCHEMA_VERSION = 3
STATUSES = ("running", "ok", "diverged", "failed")
#: fields that depend on the clock, not on the computation (ignored when comparing runs)
TIMING_FIELDS = ("started", "finished", "wall_seconds", "train_seconds")


class ResultError(ValueError):
    """A result file that cannot be used; the message says why."""


def _number(payload: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = payload.get(key)
    ok = isinstance(value, (int, float)) if kind is float else isinstance(value, int)
    if isinstance(value, bool) or not ok:
        raise ResultError(
            f"{where}: {key}={value!r} is not {'a number' if kind is float else 'an int'}"
        )
    return kind(value)


@dataclass
class EpochRecord:
    """Measures after one epoch (epoch 0: before any training)."""

    epoch: int
    train_loss: float
    train_error: float
    test_loss: float
    test_error: float
    train_seconds: float  # cumulative time in training steps at the end of this epoch
    val_loss: float | None = None  # None: the job holds no validation split
    val_error: float | None = None

    @classmethod
    def from_dict(cls, payload: Any, where: str) -> EpochRecord:
        if not isinstance(payload, dict):
            raise ResultError(f"{where}: an epoch record is not an object")
        values = {
            f.name: _number(payload, f.name, int if f.name == "epoch" else float, where)
            for f in dataclasses.fields(cls)
            if not (f.name.startswith("val_") and payload.get(f.name) is None)
        }
        return cls(**values)


@dataclass
class FoldRun:
    """One framework trained on one fold."""

    framework: str
    fold: int
    lr: float  # the learning rate it trained with (one of the job's lr_grid, or optimizer.lr)
    status: str  # "ok" or "diverged"
    epochs: list[EpochRecord]
    diverged_epoch: int | None = None

    @classmethod
    def from_dict(cls, payload: Any, where: str) -> FoldRun:
        if not isinstance(payload, dict):
            raise ResultError(f"{where}: a run is not an object")
        fold = _number(payload, "fold", int, where)
        where = f"{where}, {payload.get('framework')} fold {fold}"
        if payload.get("status") not in ("ok", "diverged"):
            raise ResultError(f"{where}: status {payload.get('status')!r}")
        epochs = payload.get("epochs")
        if not isinstance(epochs, list) or not epochs:
            raise ResultError(f"{where}: no epoch records")
        return cls(
            framework=str(payload.get("framework")),
            fold=fold,
            lr=_number(payload, "lr", float, where),
            status=payload["status"],
            epochs=[EpochRecord.from_dict(e, where) for e in epochs],
            diverged_epoch=payload.get("diverged_epoch"),
        )

    def to_dict(self) -> dict[str, Any]:
        """``asdict(self)`` without its deep copy (flat dataclasses of numbers and strings),
        fields in order."""
        return {**vars(self), "epochs": [vars(epoch) for epoch in self.epochs]}

    def complete(self, epochs: int) -> bool:
        """Every epoch 0..``epochs`` recorded, or 0..the epoch where it diverged."""
        last = self.diverged_epoch if self.status == "diverged" else epochs
        return last is not None and [e.epoch for e in self.epochs] == list(range(last + 1))


@dataclass
class JobResult:
    """One job (one configuration × all its folds), as stored in ``result.json``."""

    config: dict[str, Any]
    choices: dict[str, str]
    versions: dict[str, str]
    threads: int
    device: str
    started: str
    status: str = "running"
    error: str | None = None
    runs: list[FoldRun] = field(default_factory=list)
    finished: str | None = None
    wall_seconds: float = 0.0
    schema: int = SCHEMA_VERSION
    overrides: list[str] | None = None  # the command line's, in full (the directory may be a hash)

    # -- what the configuration asks for --------------------------------------------------------
    @property
    def frameworks(self) -> list[str]:
        return [str(name) for name in self.config["framework"]["names"]]

    @property
    def folds(self) -> int:
        return int(self.config["folds"])

    @property
    def epochs(self) -> int:
        return int(self.config["epochs"])

    @property
    def lrs(self) -> list[float]:
        """The learning rates the job trains: its ``lr_grid``, or ``optimizer.lr``."""
        grid = self.config.get("lr_grid") or [self.config["optimizer"]["lr"]]
        return [float(lr) for lr in grid]

    def models(self) -> set[tuple[str, float, int]]:
        """Every (framework, lr, fold) the configuration asks to train."""
        return {(f, lr, k) for f in self.frameworks for lr in self.lrs for k in range(self.folds)}

    def done_models(self) -> set[tuple[float, int]]:
        """The (lr, fold) models that every framework has finished (all epochs, or stopped by
        divergence)."""
        complete = {(r.framework, r.lr, r.fold) for r in self.runs if r.complete(self.epochs)}
        return {
            (lr, k)
            for lr in self.lrs
            for k in range(self.folds)
            if all((f, lr, k) in complete for f in self.frameworks)
        }

    def done_folds(self) -> list[int]:
        """The folds whose every model is finished."""
        done = self.done_models()
        return [k for k in range(self.folds) if all((lr, k) in done for lr in self.lrs)]

    def unique_runs(self) -> list[FoldRun]:
        """The runs, each (framework, lr, fold) once: the first copy of one a file holds twice."""
        seen: set[tuple[str, float, int]] = set()
        out = []
        for run in self.runs:
            if (key := (run.framework, run.lr, run.fold)) not in seen:
                seen.add(key)
                out.append(run)
        return out

    def incomplete(self) -> str | None:
        """Why this result is not a finished job's (None when it is)."""
        expected = self.models()
        held = [(r.framework, r.lr, r.fold) for r in self.runs]
        twice = sorted({key for key in held if held.count(key) > 1})
        if twice:
            framework, lr, fold = twice[0]
            return (
                f"holds {len(twice)} run(s) twice ({framework} fold {fold} lr {lr:g} first); "
                "the first copy is used, and a re-run of the same command rewrites the file"
            )
        if not set(held) <= expected:
            return f"holds runs {sorted(set(held) - expected)} the config does not ask for"
        done = self.done_folds()
        if len(done) < self.folds:
            models = f" ({len(self.done_models())} of {len(self.lrs) * self.folds} models)"
            return f"{len(done)} of {self.folds} folds finished" + (
                models if len(self.lrs) > 1 else ""
            )
        if self.status not in ("ok", "diverged"):
            return f"status {self.status!r}"
        return None

    def matches(self, config: dict[str, Any], versions: dict[str, str]) -> bool:
        """Whether this result was computed for ``config`` by the same code and versions
        (the git commit aside: a commit that changes no code keeps results valid)."""

        def code(v: dict[str, str]) -> dict[str, str]:
            return {key: value for key, value in v.items() if key != "git_commit"}

        return self.config == config and code(self.versions) == code(versions)

    # -- JSON ------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        """The JSON of `to_dict`: the job's other fields one per line, then ``runs``, one line
        per run. A run's epochs are compact (the C encoder: a tuned job's 15 MB took 0.9 s
        indented, 0.25 s this way) and still one greppable line per fold and framework."""
        head = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "runs"}
        runs = ",\n  ".join(json.dumps(run.to_dict(), allow_nan=True) for run in self.runs)
        text = json.dumps(head, indent=1, allow_nan=True)[:-2]  # without the closing "\n}"
        return text + ',\n "runs": [' + (f"\n  {runs}\n ]" if runs else "]") + "\n}\n"

    @classmethod
    def from_dict(cls, payload: Any, where: str = "result") -> JobResult:
        """Parse and check a result; raises ResultError naming what is wrong."""
        if not isinstance(payload, dict):
            raise ResultError(f"{where}: not a JSON object")
        if payload.get("schema") != SCHEMA_VERSION:
            raise ResultError(
                f"{where}: schema {payload.get('schema')!r}, this code reads {SCHEMA_VERSION} "
                "(re-run the job to recompute it)"
            )
        if payload.get("status") not in STATUSES:
            raise ResultError(f"{where}: status {payload.get('status')!r} not in {STATUSES}")
        for key, kind in (("config", dict), ("choices", dict), ("versions", dict), ("runs", list)):
            if not isinstance(payload.get(key), kind):
                raise ResultError(f"{where}: {key} missing or not a {kind.__name__}")
        try:
            names = payload["config"]["framework"]["names"]
            int(payload["config"]["folds"]), int(payload["config"]["epochs"])
            seed = payload["config"]["seed"]
        except (KeyError, TypeError, ValueError) as error:
            raise ResultError(f"{where}: config lacks frameworks, folds, epochs or seed") from error
        if not isinstance(names, list) or not names:
            raise ResultError(f"{where}: config.framework.names is empty")
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
            raise ResultError(f"{where}: seed {seed!r} is not an int in [0, 2**63 - 1]")
        return cls(
            config=payload["config"],
            choices={str(k): str(v) for k, v in payload["choices"].items()},
            versions={str(k): str(v) for k, v in payload["versions"].items()},
            threads=_number(payload, "threads", int, where),
            device=str(payload.get("device")),
            started=str(payload.get("started")),
            status=payload["status"],
            error=payload.get("error"),
            runs=[FoldRun.from_dict(run, where) for run in payload["runs"]],
            finished=payload.get("finished"),
            wall_seconds=float(payload.get("wall_seconds") or 0.0),
            overrides=[str(o) for o in payload["overrides"]]
            if isinstance(payload.get("overrides"), list)
            else None,
        )

    @classmethod
    def read(cls, path: Path | str) -> JobResult:
        """The result at ``path``; raises ResultError (missing, unreadable, not JSON, wrong
        schema, malformed) with the reason."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as error:
            raise ResultError(f"{path}: missing") from error
        except (OSError, UnicodeDecodeError) as error:
            raise ResultError(f"{path}: unreadable ({error})") from error
        if not text.strip():
            raise ResultError(f"{path}: empty file")
        try:
            payload = json.loads(text)
        except ValueError as error:
            raise ResultError(f"{path}: not valid JSON (truncated?): {error}") from error
        except RecursionError as error:
            raise ResultError(f"{path}: nested too deeply to be a result") from error
        try:
            return cls.from_dict(payload, str(path))
        except RecursionError as error:
            raise ResultError(f"{path}: nested too deeply to be a result") from error

    def write(self, path: Path | str) -> None:
        """Write the JSON atomically (`bench.atomic`: a temp file in the same directory, fsync,
        ``os.replace``): a reader (or a killed sweep's re-run) sees either the old file or the
        whole new one, never half; the file gets the umask's mode, readable by a colleague."""
        atomic.write_text(path, self.to_json())


# -- provenance -----------------------------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[2]

#: the project's own packages
PACKAGES = ("framework", "bench")
#: the job's entry point: every project module it imports, directly or not, and every module the
#: registry names (imported when a job builds a component) is code that can change a result
JOB = "bench.harness.app"


def _source(module: str, root: Path) -> Path | None:
    """The file of a project module (a package's ``__init__.py``), or None."""
    if module.partition(".")[0] not in PACKAGES:
        return None
    base = root.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imported(path: Path, module: str, root: Path) -> set[str]:
    """The project modules a file imports, wherever the import stands (top level, in a function,
    under TYPE_CHECKING), relative imports resolved; and each package a submodule is in (Python
    runs its ``__init__.py`` first)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = parts[: len(parts) - node.level + 1] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    with_packages = set()
    for name in found:
        parts = name.split(".")
        with_packages.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return {name for name in with_packages if _source(name, root) is not None}


def code_files(root: Path = ROOT) -> list[Path]:
    """Every source file whose code can change a result: the job's module and everything it
    imports, transitively, within the project, and the modules the registry names. Read from the
    source, so a new file is in as soon as the training imports it; nothing is kept by hand."""
    from bench import registry  # torch-free

    todo = [JOB, *(ref.partition(":")[0] for ref in registry.references())]
    seen: dict[str, Path] = {}
    while todo:
        module = todo.pop()
        path = _source(module, root)
        if module in seen or path is None:
            continue
        seen[module] = path
        todo += _imported(path, module, root)
    return sorted(set(seen.values()))


@functools.cache
def git_commit() -> str:
    """HEAD of the checkout the code runs from (``-dirty`` if its code has uncommitted changes;
    ``unknown`` outside a checkout, e.g. an installed wheel)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(  # only the code counts: regenerated reports/ are not a change
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                "framework",
                "bench",
                "pyproject.toml",
                "constraints.txt",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


@functools.cache
def code_hash(root: Path = ROOT) -> str:
    """SHA-256 (first 16 hex digits) of `code_files`, uncommitted edits too."""
    sha = hashlib.sha256()
    for path in code_files(root):
        sha.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return sha.hexdigest()[:16]


def versions(torch_version: str) -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "torch": torch_version,
        "git_commit": git_commit(),
        "code": code_hash(),
    }
