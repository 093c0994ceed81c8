"""Fixtures of the speed benchmarks: one intra-op thread, fixed and recorded with the versions and
the measured shapes in each benchmark's ``extra_info``.

The benchmarks time; nothing here asserts a time. Under ``make test`` (``--benchmark-disable``
from pyproject) every benchmark runs its target once, untimed, on a shortened run.

The two contenders of a group are timed *interleaved* (`interleaved`): blocks of ~20 ms of
steps of one alternate with as many steps of the other, so both sample the same moments of the
machine. On shared cores the speed drifts by up to 2x over seconds to minutes; timed one after
the other, two contenders can see different machines and their ratio moves with the drift. Each
benchmark also keeps its *paired blocks* (``extra_info["paired"]``: the median step of each of
its blocks beside that of the other contender's block just before it), from which the report takes
the ratio block by block, each measured within ~40 ms.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable

import pytest
import torch
from pairing import paired_blocks
from pytest_benchmark.utils import load_timer

from bench.harness import config
from bench.harness.spec import JobSpec

THREADS = 1

# The job configs the benchmarks compose need the structured schema in Hydra's ConfigStore (the
# app registers it when it starts; `make bench` runs these files alone).
config.register()


def shapes(job: JobSpec) -> dict[str, object]:
    """What a reader needs to know of the measured configuration."""
    model = job.model.model
    widths = [2] + [model["hidden_width"]] * model["hidden_layers"] + [1]
    return {
        "layers": "-".join(map(str, widths)),
        "hidden_width": model["hidden_width"],
        "batch_size": job.training.batch_size,
        "n_train": job.data.n_train,
        "activation": job.model.activation.name,
        "loss": job.training.loss.name,
        "optimizer": job.optimizer.name,
        "dtype": job.engine.dtype,
        "device": job.engine.device,
    }


@pytest.fixture(autouse=True)
def one_thread():
    """Every benchmark on one intra-op thread (fixed and recorded: the README's timing rule)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield torch.get_num_threads()
    torch.set_num_threads(previous)


@pytest.fixture
def record(benchmark, one_thread):
    """``record(group, job, framework, **more)``: name the benchmark's group and fill its
    ``extra_info`` (threads, versions, shapes) before it runs."""

    def _record(group: str, job: JobSpec, framework: str, **more: object) -> None:
        benchmark.group = group
        benchmark.extra_info.update(
            {
                "framework": framework,
                "threads": one_thread,
                "torch": torch.__version__,
                "python": platform.python_version(),
                **shapes(job),
                **more,
            }
        )

    return _record


INTERLEAVED_BUDGET = 1.0
"""Seconds of timed and untimed steps per benchmark (pytest-benchmark's default max_time)."""
INTERLEAVED_BLOCK = 0.02
"""Seconds of one contender's steps between switches: short against the machine's drift, long
enough that the step after a switch (its caches taken by the other contender) is a rare round
and not the median one."""


@pytest.fixture
def timer(request) -> Callable[[], float]:
    """The clock pytest-benchmark times rounds with in this session (``--benchmark-timer``), for
    timing the other contender's blocks alike."""
    return load_timer(request.config.getoption("benchmark_timer")).target


@pytest.fixture
def interleaved(benchmark, timer) -> Callable[..., None]:
    """``interleaved(step, other)``: time ``step`` one call per round (pytest-benchmark's
    pedantic mode), switching every ~``INTERLEAVED_BLOCK`` seconds to a block of as many steps of
    ``other``, the group's other contender, as it has timed rounds in a block; enough rounds to
    fill about ``INTERLEAVED_BUDGET`` seconds (at least ``min_rounds``). The other's blocks are
    timed step by step with the session's timer and kept beside ``step``'s, as ``[step's median
    round, other's median step]`` per block, in ``extra_info["paired"]``. Under
    ``--benchmark-disable`` each runs once."""

    def run(step: Callable[[], object], other: Callable[[], object], min_rounds: int = 15) -> None:
        if not benchmark.enabled:
            benchmark(step)
            other()
            return
        for _ in range(3):  # warm-up of both (allocations, caches, lazy initialisation)
            other()
            step()
        pairs, start = 0, time.perf_counter()
        while pairs < 3 or time.perf_counter() - start < 0.05:
            other()
            step()
            pairs += 1
        per_pair = (time.perf_counter() - start) / pairs
        rounds = max(min_rounds, min(20_000, int(INTERLEAVED_BUDGET / per_pair)))
        block = max(1, int(INTERLEAVED_BLOCK / (per_pair / 2)))
        # Per setup call (the first is the warm-up round's): the other's median step, if a block
        # of it ran right before that round, else None.
        before: list[float | None] = []

        def setup() -> None:  # returns nothing: pytest-benchmark then calls step() bare
            if len(before) % block == 0:
                times = []
                for _ in range(block):
                    began = timer()
                    other()
                    times.append(timer() - began)
                before.append(statistics.median(times))
            else:
                before.append(None)

        benchmark.pedantic(step, setup=setup, rounds=rounds, iterations=1, warmup_rounds=1)
        benchmark.extra_info["interleaved_block"] = block
        benchmark.extra_info["paired"] = paired_blocks(benchmark.stats.stats.data, before[1:])

    return run
