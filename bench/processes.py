"""Worker processes for collect and the report: how many a command may use, how they start.

Both steps split work that is independent (a job's file, a figure) over a small process pool
and gather the results in order, so what they write does not depend on the number of workers.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any

WORKERS = 2
"""Processes of collect and of the report's figures: they run alone at the end of a sweep."""


def cpus() -> int:
    """The CPUs this process may run on (Linux: its affinity, a SLURM job's CPUs, not the
    host's)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def pool(
    workers: int, initializer: Callable[..., None] | None = None, initargs: tuple[Any, ...] = ()
) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes, forked on Linux: a worker starts at once with this
    process's modules and data, nothing sent (pickling the report's 311,676-row table to two
    workers, as spawn or forkserver must, cost more than a second, importing the modules again
    as much). This process may hold threads when it forks (pyarrow's and OpenBLAS's pools,
    idle), which a fork does not copy: both libraries register fork handlers that restart their
    pools in the child. Elsewhere the platform's default start method (spawn on macOS, where
    fork is unsafe). Submit work inside `forking`."""
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else None)
    return ProcessPoolExecutor(workers, context, initializer, initargs)


@contextmanager
def forking() -> Iterator[None]:
    """Where a `pool` starts its processes (on its first submissions): Python >= 3.12 warns of
    every fork of a process with threads, safe here (`pool`)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "This process .* is multi-threaded", DeprecationWarning)
        yield
