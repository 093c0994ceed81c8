"""Helpers shared by the harness tests: compose the real config tree without the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "bench" / "conf"

#: small and quick: 2 folds of 200/100 points, 3 epochs of 4 batches
SMALL = ["folds=2", "epochs=3", "batch_size=50", "data.n_train=200", "data.n_test=100"]


def compose(*overrides: str) -> DictConfig:
    """The job config the CLI would build from ``overrides`` (Hydra's compose API)."""
    import bench.harness.config

    bench.harness.config.register()
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return hydra_compose("config", overrides=list(overrides))


def cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m bench ARGS`` in ``cwd``, as a user runs it."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    env.pop("HYDRA_FULL_ERROR")
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
