"""The parts of the SLURM test that need no cluster (they run in ``make test``): the sacct shim,
read by submitit's own parser, and the reasons the cluster gives for not running."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import slurm_cluster
from submitit.slurm.slurm import SlurmInfoWatcher

#: `scontrol --oneliner show job ID` as SLURM 22.05 prints it (trimmed): an array of four tasks
#: (two ended, two still pending behind a throttle), and a plain job
SCONTROL = {
    "7": [
        "JobId=7 ArrayJobId=7 ArrayTaskId=2-3%2 ArrayTaskThrottle=2 JobName=app UserId=root(0) "
        "JobState=PENDING Reason=JobArrayTaskLimit Dependency=(null) NodeList= NumNodes=1",
        "JobId=9 ArrayJobId=7 ArrayTaskId=1 ArrayTaskThrottle=2 JobName=app UserId=root(0) "
        "JobState=CANCELLED Reason=None Dependency=(null) NodeList=vm BatchHost=vm",
        "JobId=8 ArrayJobId=7 ArrayTaskId=0 ArrayTaskThrottle=2 JobName=app UserId=root(0) "
        "JobState=COMPLETED Reason=None Dependency=(null) NodeList=vm BatchHost=vm",
    ],
    "12": ["JobId=12 JobName=app UserId=root(0) JobState=RUNNING Reason=None NodeList=vm"],
}


def test_sacct_shim_answers_submitits_query_from_scontrol(tmp_path):
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    for job, lines in SCONTROL.items():
        (jobs / job).write_text("\n".join(lines) + "\n")
    fake = tmp_path / "bin" / "scontrol"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\n"
        f'cat "{jobs}/$4" 2>/dev/null && exit 0\n'
        'echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1\n'
    )
    fake.chmod(0o755)
    path = os.pathsep.join([str(fake.parent), str(slurm_cluster.SHIM_DIR), os.environ["PATH"]])
    out = subprocess.run(
        # exactly what submitit runs (SlurmInfoWatcher._make_command), a job it does not know too
        ["sacct", "-o", "JobID,State,NodeList", "--parsable2", "-j", "7", "-j", "12", "-j", "99"],
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        check=True,
    )
    info = SlurmInfoWatcher().read_info(out.stdout)
    states = {job: stats["State"] for job, stats in info.items()}
    assert states == {
        "7_0": "COMPLETED",
        "7_1": "CANCELLED",
        "7_2": "PENDING",
        "7_3": "PENDING",
        "12": "RUNNING",
    }
    assert info["7_1"]["NodeList"] == "vm"


def test_cluster_says_why_it_cannot_run(monkeypatch, tmp_path):
    monkeypatch.setattr(slurm_cluster, "_missing", lambda: ["munge"])
    monkeypatch.setattr(slurm_cluster.os, "geteuid", lambda: 1000)
    assert slurm_cluster.unavailable().startswith("not root")

    monkeypatch.setattr(slurm_cluster.os, "geteuid", lambda: 0)
    monkeypatch.setattr(slurm_cluster, "DEBIAN", tmp_path / "debian_version")
    assert "not Debian" in slurm_cluster.unavailable()

    slurm_cluster.DEBIAN.write_text("12.0\n")
    monkeypatch.setattr(slurm_cluster.shutil, "which", lambda program, path=None: program)
    assert "apt-get install" in slurm_cluster.unavailable(install=False)

    def offline(args, **kwargs):
        return subprocess.CompletedProcess(args, 100, "", "Temporary failure resolving 'deb'")

    monkeypatch.setattr(slurm_cluster.subprocess, "run", offline)
    reason = slurm_cluster.unavailable()
    assert "missing munge" in reason and "no network" in reason and "resolving" in reason

    monkeypatch.setattr(slurm_cluster, "_missing", list)
    assert slurm_cluster.unavailable() is None


@pytest.mark.parametrize("key", ["NODE", "CPUS", "MEMORY", "CTLD_PORT", "STATE", "PARTITION"])
def test_slurm_conf_template_has_every_key_the_cluster_fills(key):
    assert f"@{key}@" in slurm_cluster.TEMPLATE.read_text()


def test_slurm_preset_extends_submitit_slurm_and_keeps_job_directories():
    from bench_utils import CONF
    from hydra import compose, initialize_config_dir

    import bench.harness.config

    bench.harness.config.register()
    overrides = ["hydra/launcher=slurm", "hydra.launcher.partition=cpu"]
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert launcher.partition == "cpu" and launcher.timeout_min == 30
    assert (launcher.cpus_per_task, launcher.mem_gb, launcher.array_parallelism) == (1, 1, 64)
    assert launcher.max_num_timeout == 0  # the plugin's own keys are all there

    # launcher settings are Hydra overrides: they never name a job's directory
    show = ["--cfg", "hydra", "-p", "hydra.job.override_dirname", "--resolve"]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "activation=tanh",
            *overrides,
            "hydra.launcher.mem_gb=4",
            *show,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "activation=tanh"
