"""The Hydra CLI as a user runs it: real multiruns, resume after kill -9, bad configs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from bench_utils import cli

QUICK = ["epochs=3", "folds=2", "batch_size=50", "data.n_train=200", "data.n_test=100"]


def sweep_results(sweep_dir):
    return sorted(p.parent.name for p in sweep_dir.rglob("result.json"))


def finished_jobs(sweep_dir) -> dict[str, str]:
    """The text of every result.json whose job ended (a running job rewrites its file)."""
    texts = {p.parent.name: p.read_text() for p in sweep_dir.rglob("result.json")}
    return {name: t for name, t in texts.items() if json.loads(t)["status"] != "running"}


@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_smoke_multirun_2_configs_2_folds_3_epochs_then_collect(tmp_path, launcher):
    sweep = tmp_path / "runs" / "smoke"
    out = cli(
        "-m",
        f"hydra/launcher={launcher}",
        "activation=relu,tanh",
        *QUICK,
        "name=smoke",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert len(sweep_results(sweep)) == 2
    assert "folds 1-2/2" in out.stdout + out.stderr  # the stacked engine's progress line
    table = tmp_path / "results.parquet"
    collected = subprocess.run(
        [sys.executable, "-m", "bench.collect", str(tmp_path / "runs"), "--out", str(table)],
        capture_output=True,
        text=True,
    )
    assert collected.returncode == 0, collected.stderr
    frame = pd.read_parquet(table)
    assert len(frame) == 2 * 2 * 4  # configs × folds × (epoch 0..3)
    assert set(frame["activation"]) == {"relu", "tanh"} and set(frame["experiment"]) == {"smoke"}


def test_experiment_file_holds_its_own_sweep(tmp_path):
    out = cli("experiment=fig4_losses", *QUICK, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert sweep_results(tmp_path / "runs" / "fig4_losses") == [
        "batch_size=50,data.n_test=100,data.n_train=200,epochs=3,folds=2,loss=bce",
        "batch_size=50,data.n_test=100,data.n_train=200,epochs=3,folds=2,loss=mse",
    ]


def test_sweep_killed_midway_resumes_only_missing_jobs(tmp_path):
    args = [
        sys.executable,
        "-m",
        "bench",
        "-m",
        "activation=relu,tanh,leaky_relu,elu",
        "epochs=150",
        "folds=2",
        "name=resume",
    ]
    sweep = tmp_path / "runs" / "resume"
    process = subprocess.Popen(
        args,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not finished_jobs(sweep) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # kill -9: no cleanup runs
    process.wait()
    finished = finished_jobs(sweep)
    assert 1 <= len(finished) < 4, "the kill must land mid-sweep"

    out = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert len(sweep_results(sweep)) == 4
    for name, text in finished.items():  # finished jobs untouched, byte for byte
        assert (sweep / name / "result.json").read_text() == text
        assert "done already, skipping" in out.stdout + out.stderr
    for path in sweep.rglob("result.json"):
        assert json.loads(path.read_text())["status"] == "ok"


@pytest.mark.parametrize(
    ("override", "names"),
    [
        ("activation=swish", ["activation/swish", "relu", "tanh", "leaky_relu", "elu"]),
        ("optimizer.lr=-1", ["optimizer.lr", "-1", "in [0, inf]"]),
        ("folds=0", ["folds", "0", "at least 1"]),
        ("batch_size=5000", ["batch_size", "5000", "data.n_train - data.n_val = 1000"]),
        ("epochs=ten", ["epochs", "ten", "Integer"]),
        ("dtype=float16", ["dtype", "float16", "float32, float64"]),
        ("optimizer.momentun=0.9", ["momentun", "SGDConfig"]),
    ],
)
def test_bad_config_exits_nonzero_with_one_screen_message_no_traceback(tmp_path, override, names):
    out = cli(override, cwd=tmp_path, timeout=120)
    message = out.stdout + out.stderr
    assert out.returncode != 0
    assert "Traceback" not in message
    assert len(message.splitlines()) <= 25
    for name in names:
        assert name in message
    assert not list(tmp_path.rglob("result.json"))  # nothing trained


@pytest.mark.slow
def test_submitit_local_launcher_runs_the_same_sweep(tmp_path):
    out = cli(
        "-m",
        "hydra/launcher=submitit_local",
        "activation=relu,tanh",
        *QUICK,
        "name=submitit",
        cwd=tmp_path,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert len(sweep_results(tmp_path / "runs" / "submitit")) == 2
