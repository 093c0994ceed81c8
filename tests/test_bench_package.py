"""The package as users get it: the report never imports torch, and a wheel built from the
project (not an editable install) carries its configuration tree and runs a job from anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_report_package_builds_a_whole_report_without_importing_torch(tmp_path):
    """The report reads only the results table: building every figure, table and the README
    from a results file leaves torch unimported."""
    code = f"""
import sys
sys.path.insert(0, {str(ROOT / "tests")!r})
from report_data import make_results
from bench.report import build
make_results(folds=2, epochs=4).to_parquet({str(tmp_path / "results.parquet")!r})
assert build.main(["--results", {str(tmp_path / "results.parquet")!r},
                   "--out", {str(tmp_path / "out")!r}]) == 0
import bench.report.speed, bench.report.claims, bench.report.views
print("torch" in sys.modules, any(m.startswith("torch.") for m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ["False", "False"]
    assert (tmp_path / "out" / "README.md").is_file()


@pytest.mark.slow
def test_wheel_ships_the_config_tree_and_runs_a_job_from_any_directory(tmp_path):
    """``pip install`` of the built wheel into a fresh environment (not editable), then
    ``python -m bench epochs=1 folds=1`` from an unrelated directory."""
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(ROOT)],
        check=True,
        timeout=600,
    )
    (wheel,) = dist.glob("*.whl")
    env_dir = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)],
        check=True,
        timeout=600,
    )
    # The dependencies (torch, hydra, ...) from this environment's site-packages, added as a
    # plain path: its editable-install hook for this project is not loaded, so `bench` and
    # `framework` can only come from the wheel just installed.
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    where = tmp_path / "elsewhere"
    where.mkdir()
    out = subprocess.run(
        [str(python), "-m", "bench", "epochs=1", "folds=1", "data.n_train=100", "batch_size=50"],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    (result,) = where.rglob("result.json")
    assert '"status": "ok"' in result.read_text()
    located = subprocess.run(
        [str(python), "-c", "import bench, framework; print(bench.__file__, framework.__file__)"],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(env_dir) in located.stdout and str(ROOT) not in located.stdout
    preset = subprocess.run(  # a config group two levels deep ships too
        [
            str(python),
            "-m",
            "bench",
            "hydra/launcher=slurm",
            "--cfg",
            "hydra",
            "-p",
            "hydra.launcher",
        ],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
    )
    assert preset.returncode == 0 and "SlurmLauncher" in preset.stdout, preset.stderr
