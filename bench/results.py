"""Result files: one ``result.json`` per job, written atomically, read defensively."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import torch

RESULT_FILE = "result.json"
SCHEMA_VERSION = 1
#: fields that depend on the clock, not on the computation (ignored when comparing runs)
TIMING_FIELDS = ("started", "finished", "wall_seconds", "train_seconds")


def write_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON to a temp file in the same directory, fsync, then ``os.replace``: a reader
    (or a killed sweep's re-run) sees either the old file, or the whole new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as file:
            json.dump(payload, file, indent=1, allow_nan=True)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def read(path: Path) -> dict[str, Any] | None:
    """The result at ``path``, or None if it is missing or unreadable."""
    try:
        with open(path) as file:
            payload = json.load(file)
    except (OSError, ValueError):
        return None
    return payload if isinstance(payload, dict) else None


@functools.cache
def git_commit() -> str:
    """HEAD of the checkout the code runs from (``-dirty`` if its code has uncommitted changes)."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
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
                "conf",
                "pyproject.toml",
                "constraints.txt",
            ],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


#: the code that determines a result's numbers: a change to any of it invalidates old results
CODE = (
    "framework/**/*.py",
    "bench/app.py",
    "bench/config.py",
    "bench/data.py",
    "bench/reference.py",
    "bench/training.py",
)


@functools.cache
def code_hash() -> str:
    """SHA-256 (first 16 hex digits) of the code that computes results, uncommitted edits too."""
    root = Path(__file__).resolve().parents[1]
    sha = hashlib.sha256()
    for path in sorted({p for pattern in CODE for p in root.glob(pattern)}):
        sha.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return sha.hexdigest()[:16]


def versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "git_commit": git_commit(),
        "code": code_hash(),
    }


def finished(previous: dict[str, Any] | None, config: dict[str, Any]) -> bool:
    """Whether ``previous`` already holds this job's result: same config, same code and
    versions, and a run that ended (``ok`` or ``diverged``; a ``failed`` job is retried)."""
    return (
        previous is not None
        and previous.get("schema") == SCHEMA_VERSION
        and previous.get("config") == config
        and previous.get("status") in ("ok", "diverged")
        and {k: v for k, v in previous.get("versions", {}).items() if k != "git_commit"}
        == {k: v for k, v in versions().items() if k != "git_commit"}
    )
