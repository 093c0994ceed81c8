"""The SLURM tests (``make test-slurm``): a throwaway single-node cluster per session.

They run only when selected by marker (``pytest -m slurm``): a bare ``pytest`` or ``make
test-slow`` must not install Debian packages or start daemons. The cluster fixture skips, saying
why, where no cluster can run (not root, not Debian/apt, apt-get failing), and always tears the
cluster down, failing the session if any of its processes outlives the teardown.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from slurm_cluster import Cluster, unavailable


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "slurm" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="starts a SLURM cluster as root: run `make test-slurm`")
    for item in items:
        if item.get_closest_marker("slurm"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def cluster():
    """A running single-node cluster; stopped (and checked to be gone) after the session."""
    reason = unavailable()
    if reason:
        pytest.skip(f"SLURM test skipped: {reason}")
    # Not under pytest's tmp_path: munged runs as `munge` and must traverse the directory.
    base = Path(tempfile.mkdtemp(prefix="bench-slurm-"))
    base.chmod(0o755)
    running = Cluster(base / "state")
    try:
        yield running.start()
    finally:
        left = running.stop()
        if not left:
            shutil.rmtree(base, ignore_errors=True)
    assert not left, (
        f"processes of the cluster outlived its teardown (state kept in {base}): {left}"
    )
