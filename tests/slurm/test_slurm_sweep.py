"""The sweep on a real scheduler: a single-node SLURM (``make test-slurm``, see conftest.py).

Through ``hydra/launcher=slurm`` (the preset extending ``submitit_slurm``) a sweep runs as one
sbatch array, and its collected table equals the same sweep run here by the basic launcher. A job
the scheduler kills (scancel of its array task once it has finished a fold) ends its sweep with an
error instead of a hang, collect names it (exit 3), and re-submitting the same command skips the
finished job and resumes the killed one from its first unfinished fold.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

pytestmark = pytest.mark.slurm

SMALL = ["epochs=3", "folds=2", "batch_size=50", "data.n_train=200", "data.n_test=100"]
#: four jobs (one per activation) of two folds
SWEEP = ["experiment=fig2_activations", *SMALL]
#: a short job, and a long one to kill after its first fold: a fold takes about 10 s here, far
#: longer than the scancel and the 1 s KillWait (slurm.conf.in) before its SIGKILL; the
#: sequential engine saves after every fold (the stacked one after every chunk of models)
KILLED = ["name=slurm_killed", "epochs=3,12000", "folds=2", "engine=sequential", *SMALL[2:]]
#: the long job's directory (Hydra's override_dirname: the job's overrides, sorted)
LONG_JOB = "batch_size=50,data.n_test=100,data.n_train=200,engine=sequential,epochs=12000,folds=2"
#: columns that hold the clock, or the commit each side ran at: not the computation
TIMING = ["train_seconds", "finished", "git_commit"]


def bench(*args: str) -> list[str]:
    """The command line of ``python -m bench -m ARGS``, as a user types it."""
    return [sys.executable, "-m", "bench", "-m", *args]


def on_slurm(cluster) -> list[str]:
    return ["hydra/launcher=slurm", f"hydra.launcher.partition={cluster.partition}"]


def sweep_env(cluster) -> dict[str, str]:
    """SLURM_CONF, and the sacct shim first on PATH: sbatch passes both on to the jobs."""
    env = cluster.env()
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def collect(runs: Path, out: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "bench.collect", str(runs), "--out", str(out)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def slurm_job_id(job_dir: Path) -> str:
    """The SLURM id (``ARRAY_TASK``) a job ran as: Hydra records the launcher's job id."""
    return str(OmegaConf.load(job_dir / ".hydra" / "hydra.yaml").hydra.job.id)


def folds_in(result: Path) -> int:
    """How many folds a result.json holds (0 while it does not exist)."""
    try:
        return len({run["fold"] for run in json.loads(result.read_text())["runs"]})
    except (OSError, ValueError):
        return 0


def logs(runs: Path) -> str:
    """The tail of every job's submitit log, for failure messages."""
    return "".join(
        f"\n--- {path}\n{path.read_text(errors='replace')[-2000:]}"
        for path in sorted(runs.rglob(".submitit/*/*_log.*"))
    )


def test_sweep_on_slurm_equals_the_same_sweep_run_locally(cluster, tmp_path):
    local, remote = tmp_path / "local", tmp_path / "slurm"
    local.mkdir()
    remote.mkdir()
    env = sweep_env(cluster)
    here = run(bench(*SWEEP, "hydra/launcher=basic"), local, env)
    assert here.returncode == 0, here.stderr
    start = time.monotonic()
    there = run(bench(*SWEEP, *on_slurm(cluster)), remote, env)
    took = time.monotonic() - start
    runs = remote / "runs"
    assert there.returncode == 0, there.stderr + logs(runs)

    # It went through the scheduler: one array of four tasks, all COMPLETED, run by this Python.
    jobs = sorted(p.parent for p in runs.rglob("result.json"))
    ids = [slurm_job_id(job) for job in jobs]
    assert len(ids) == 4 and len({i.partition("_")[0] for i in ids}) == 1, ids
    states = cluster.final_states(ids)
    assert set(states.values()) == {"COMPLETED"}, states
    (script,) = runs.rglob(".submitit/*/*_submission.sh")
    assert f"#SBATCH --partition={cluster.partition}" in script.read_text()
    assert "srun --unbuffered" in script.read_text() and sys.executable in script.read_text()
    assert "chunk 1/1: folds 1-2/2" in logs(runs)  # the stacked engine's progress line

    tables = {}
    for name, where in (("local", local), ("slurm", remote)):
        out = collect(where / "runs", where / "results.parquet")
        assert out.returncode == 0, out.stderr
        tables[name] = pd.read_parquet(where / "results.parquet")
    assert len(tables["slurm"]) == 4 * 2 * 4  # jobs × folds × epochs 0..3
    assert set(tables["slurm"]["activation"]) == {"relu", "tanh", "leaky_relu", "elu"}
    # every column (numbers, labels, job paths, versions, config ids) but the clock's
    pd.testing.assert_frame_equal(
        tables["slurm"].drop(columns=TIMING), tables["local"].drop(columns=TIMING)
    )
    print(f"sweep on slurm: array tasks {', '.join(ids)} {states[ids[0]]}, {took:.0f} s")


def test_job_killed_by_the_scheduler_is_reported_then_resumed(cluster, tmp_path):
    env = sweep_env(cluster)
    runs = tmp_path / "runs"
    long_job = runs / "slurm_killed" / LONG_JOB
    result = long_job / "result.json"
    command = bench(*KILLED, *on_slurm(cluster))
    sweep = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while folds_in(result) < 1:
            assert sweep.poll() is None, sweep.communicate()[0] + logs(runs)
            assert time.monotonic() < deadline, "the long job never finished a fold" + logs(runs)
            time.sleep(0.2)
        task = slurm_job_id(long_job)
        cluster.run("scancel", task)  # SIGTERM (submitit ignores it), 1 s KillWait, SIGKILL
        cancelled = time.monotonic()
        output, _ = sweep.communicate(timeout=180)  # ends: the sacct shim reports CANCELLED
        ended = time.monotonic() - cancelled
    finally:
        if sweep.poll() is None:
            os.killpg(sweep.pid, signal.SIGKILL)
            sweep.wait()
    assert cluster.final_states([task]) == {task: "CANCELLED"}
    killed = json.loads(result.read_text())
    assert killed["status"] == "running" and folds_in(result) == 1, (
        "the job was not killed mid-fold (its second fold ended within KillWait?)" + logs(runs)
    )
    # The sweep ends in error (no hang), naming the job and its state.
    assert sweep.returncode != 0, output
    assert f"Job {task}" in output and "state: CANCELLED" in output, output

    # collect names the killed job (and only it) and exits 3; the table holds its finished fold.
    out = collect(runs, tmp_path / "results.parquet")
    problems = [line for line in out.stderr.splitlines() if line.startswith("collect: ")]
    assert out.returncode == 3, out.stderr
    assert problems == [
        f"collect: partial job: {result}: 1 of 2 folds finished (resume: re-run the same command)"
    ], out.stderr
    frame = pd.read_parquet(tmp_path / "results.parquet")
    assert set(frame["epochs"]) == {3, 12000}
    assert set(frame.loc[frame["epochs"] == 12000, "fold"]) == {0}

    # Re-submitting the same command skips the finished job and resumes the killed one.
    again = run(command, tmp_path, env)
    assert again.returncode == 0, again.stderr + logs(runs)
    assert "done already, skipping" in logs(runs)
    assert "resuming: folds 0 already done" in logs(runs)
    resumed = json.loads(result.read_text())
    assert resumed["status"] == "ok" and resumed["runs"][0] == killed["runs"][0]
    out = collect(runs, tmp_path / "results.parquet")
    assert out.returncode == 0, out.stderr
    print(
        f"killed {task} (scancel after fold 1/2): sweep exit {sweep.returncode} after {ended:.0f}"
        f" s; collect exit 3: {problems[0]}; resubmitted: resumed from fold 2/2, collect exit 0"
    )
