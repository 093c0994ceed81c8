"""Fixtures of the speed benchmarks: one intra-op thread, fixed and recorded with the versions and
the measured shapes in each benchmark's ``extra_info``.

The benchmarks time; nothing here asserts a time. Under ``make test`` (``--benchmark-disable``
from pyproject) every benchmark runs its target once, untimed, on a shortened run.
"""

from __future__ import annotations

import platform

import pytest
import torch
from omegaconf import DictConfig

from bench.harness import config

THREADS = 1

# The job configs the benchmarks compose need the structured schema in Hydra's ConfigStore (the
# app registers it when it starts; `make bench` runs these files alone).
config.register()


def shapes(cfg: DictConfig) -> dict[str, object]:
    """What a reader needs to know of the measured configuration."""
    widths = [2] + [cfg.model.hidden_width] * cfg.model.hidden_layers + [1]
    return {
        "layers": "-".join(map(str, widths)),
        "hidden_width": cfg.model.hidden_width,
        "batch_size": cfg.batch_size,
        "n_train": cfg.data.n_train,
        "activation": str(cfg.activation.name.value),
        "loss": str(cfg.loss.name.value),
        "optimizer": cfg.optimizer.name,
        "dtype": str(cfg.dtype.value),
        "device": cfg.device,
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
    """``record(group, cfg, framework, **more)``: name the benchmark's group and fill its
    ``extra_info`` (threads, versions, shapes) before it runs."""

    def _record(group: str, cfg: DictConfig, framework: str, **more: object) -> None:
        benchmark.group = group
        benchmark.extra_info.update(
            {
                "framework": framework,
                "threads": one_thread,
                "torch": torch.__version__,
                "python": platform.python_version(),
                **shapes(cfg),
                **more,
            }
        )

    return _record
