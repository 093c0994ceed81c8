"""Nothing lost, nothing silently wrong: the harness under bad input and faults.

Each test's docstring gives the reproduction (the command a user ran) and what it now gets.
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
from bench_utils import SMALL, cli, compose

from bench.harness import app, collect, engines, results

QUICK = ["epochs=2", "folds=2", "batch_size=50", "data.n_train=100", "data.n_test=50"]


def collect_cli(runs: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench.collect", str(runs), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def no_traceback(out: subprocess.CompletedProcess) -> str:
    message = out.stdout + out.stderr
    assert "Traceback" not in message, message
    return message


def test_collect_of_a_runs_dir_where_every_job_failed_lists_them_and_exits_3(tmp_path, monkeypatch):
    """Was: every job failed (``optimizer.lr=1e300``) -> ``python -m bench.collect`` crashed with
    a TypeError, no table, no failure summary. Now: the failed jobs are listed, the table of
    their failure rows is written, exit 3."""

    def explode(job, unit):
        raise RuntimeError("loss became a complex number")

    monkeypatch.setattr(engines, "run_unit", explode)
    for activation in ("relu", "tanh"):
        app.run(compose(*SMALL, f"activation={activation}"), tmp_path / "runs" / activation)
    out = collect_cli(tmp_path / "runs", tmp_path / "table.parquet")
    message = no_traceback(out)
    assert out.returncode == 3
    assert message.count("failed job") == 2 and "complex number" in message
    table = pd.read_parquet(tmp_path / "table.parquet")
    assert set(table["status"]) == {"failed"} and len(table) == 2


@pytest.mark.parametrize("seed", ["9223372036854775808", str(2**70), "-1"])
def test_seed_outside_int64_is_refused_before_training(tmp_path, seed):
    """Was: ``seed=9223372036854775808`` (or ``2**70`` as a number) ran, then collect crashed
    on the whole runs dir. Now: one line naming the seed and its range, exit 2, nothing run."""
    out = cli(f"seed={seed}", *QUICK, cwd=tmp_path)
    message = no_traceback(out)
    assert out.returncode == 2
    assert "seed" in message and "2**63 - 1" in message
    assert not list(tmp_path.rglob("result.json"))


def test_collect_survives_a_result_with_a_seed_outside_int64(tmp_path):
    """A result file from elsewhere with a seed the table cannot hold: that job is listed as
    unreadable, the valid jobs are collected, exit 3."""
    app.run(compose(*SMALL), tmp_path / "runs" / "good")
    bad = json.loads((tmp_path / "runs" / "good" / "result.json").read_text())
    bad["config"]["seed"] = 2**70
    (tmp_path / "runs" / "bad").mkdir()
    (tmp_path / "runs" / "bad" / "result.json").write_text(json.dumps(bad))
    out = collect_cli(tmp_path / "runs", tmp_path / "t.parquet")
    message = no_traceback(out)
    assert out.returncode == 3 and "unreadable job" in message and "seed" in message
    assert set(pd.read_parquet(tmp_path / "t.parquet")["job"]) == {"good"}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("", "empty file"),
        ('{"schema": 2, "status": "ok", "conf', "not valid JSON"),
        ("[1, 2, 3]", "not a JSON object"),
        ('{"schema": 1, "status": "ok"}', "schema 1"),
    ],
    ids=["empty", "truncated", "not-an-object", "old-schema"],
)
def test_unreadable_result_is_listed_with_its_reason_and_collect_exits_3(tmp_path, content, reason):
    """Was: a truncated, empty or non-JSON ``result.json`` was silently left out, exit 0.
    Now: listed by path with the reason, the readable jobs are written, exit 3."""
    app.run(compose(*SMALL), tmp_path / "runs" / "good")
    (tmp_path / "runs" / "broken").mkdir()
    (tmp_path / "runs" / "broken" / "result.json").write_text(content)
    out = collect_cli(tmp_path / "runs", tmp_path / "t.parquet")
    message = no_traceback(out)
    assert out.returncode == 3
    assert "unreadable job" in message and "broken" in message and reason in message
    assert set(pd.read_parquet(tmp_path / "t.parquet")["job"]) == {"good"}


def _truncate(path: Path, folds: int | None = None, epochs: int | None = None) -> None:
    payload = json.loads(path.read_text())
    if folds is not None:
        payload["runs"] = [r for r in payload["runs"] if r["fold"] < folds]
    if epochs is not None:
        for run in payload["runs"]:
            run["epochs"] = run["epochs"][: epochs + 1]
    path.write_text(json.dumps(payload))


@pytest.mark.parametrize("cut", [{"folds": 1}, {"epochs": 2}], ids=["fewer-folds", "fewer-epochs"])
def test_result_with_fewer_folds_or_epochs_than_configured_is_partial_not_finished(tmp_path, cut):
    """Was: a ``result.json`` whose config matched but held fewer folds or epochs than
    configured was taken as finished by the sweep, collect and the report. Now: collect lists
    it as partial (exit 3) and keeps only complete folds; the next run recomputes what is
    missing."""
    job = tmp_path / "runs" / "job"
    cfg = compose(*SMALL)
    app.run(cfg, job)
    _truncate(job / "result.json", **cut)
    found = collect.collect_runs(tmp_path / "runs")
    assert [p.kind for p in found.problems] == ["partial"]
    assert "folds finished" in found.problems[0].reason
    if "folds" in cut:
        assert sorted(found.frame["fold"].unique()) == [0]
    else:
        assert found.frame.empty  # no fold holds every configured epoch
    assert collect.main([str(tmp_path / "runs"), "--out", str(tmp_path / "t.parquet")]) == 3
    rerun = app.run(cfg, job)
    assert rerun.incomplete() is None and rerun.done_folds() == [0, 1]


def test_plus_prefixed_unknown_keys_are_refused_with_the_nearest_valid_key(tmp_path):
    """Was: after the typo ``epoch=5`` Hydra suggests ``+epoch=5``, which ran with ``epochs``
    unchanged; ``+foo=1`` was stored silently. Now: refused before training, naming the key
    and the nearest valid one."""
    out = cli("+epoch=5", *QUICK, cwd=tmp_path)
    message = no_traceback(out)
    assert out.returncode == 2 and "unknown key 'epoch'" in message
    assert "did you mean 'epochs'" in message
    out = cli("+foo=1", *QUICK, cwd=tmp_path)
    assert out.returncode == 2 and "unknown key 'foo'" in no_traceback(out)
    assert not list(tmp_path.rglob("result.json"))


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["activation=leaky_relu", "activation.negative_slope=nan"], "activation.negative_slope"),
        (["activation=leaky_relu", "activation.negative_slope=inf"], "activation.negative_slope"),
        (["activation=elu", "activation.alpha=nan"], "activation.alpha"),
        (["optimizer.lr=1e300"], "optimizer.lr"),  # float32 cannot hold it
        (["optimizer=adam", "optimizer.eps=1e-60"], "optimizer.eps"),  # 0 in float32
        (["+optimizer.betas=[0.5,0.5]"], "optimizer.betas"),  # SGD has no betas
    ],
    ids=["slope-nan", "slope-inf", "alpha-nan", "lr-1e300-float32", "eps-underflow", "sgd-betas"],
)
def test_configuration_errors_are_refused_not_recorded_as_training_outcomes(
    tmp_path, overrides, key
):
    """Was: ``negative_slope=nan`` ran and was recorded ``diverged``; ``lr=1e300`` in float32
    and ``+optimizer.betas`` on SGD ended ``failed`` with a traceback. Now: one line naming the
    key, exit 2, nothing trained."""
    out = cli(*overrides, *QUICK, cwd=tmp_path)
    message = no_traceback(out)
    assert out.returncode == 2 and key in message
    assert len(message.strip().splitlines()) <= 3
    assert not list(tmp_path.rglob("result.json"))


def test_large_lr_is_allowed_in_float64_where_it_is_representable():
    app.config.validate(compose(*SMALL, "optimizer.lr=1e300", "dtype=float64"))


@pytest.mark.parametrize("engine", ["engine=sequential", "engine=stacked chunk=1"])
def test_killed_job_keeps_every_finished_fold_and_resumes_from_the_first_unfinished(
    tmp_path, engine
):
    """Was: a job wrote nothing until all its folds ended (a long job killed after 3,791 folds
    lost all of them). Now: ``result.json`` is rewritten atomically after each fold (each chunk
    of stacked models); after ``kill -9`` collect lists the job as partial with its folds, and a
    re-run trains only the missing folds; the result equals an uninterrupted run's (timings
    aside)."""
    args = ["folds=6", "epochs=40", "data.n_train=400", "batch_size=20", "hydra.run.dir=job"]
    args += engine.split()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench", *args],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    path = tmp_path / "job" / "result.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if path.exists() and len(json.loads(path.read_text())["runs"]) >= 2:
            break
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    partial = results.JobResult.read(path)
    kept = partial.done_folds()
    assert partial.status == "running" and 2 <= len(kept) < 6, "the kill must land mid-job"
    found = collect.collect_runs(tmp_path / "job")
    assert [p.kind for p in found.problems] == ["partial"]
    assert sorted(found.frame["fold"].unique()) == kept

    out = cli(*args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"resuming: folds {', '.join(map(str, kept))} already done" in out.stdout + out.stderr
    resumed = results.JobResult.read(path)
    assert resumed.status == "ok" and resumed.done_folds() == list(range(6))
    for fold in kept:  # kept folds were not recomputed: byte-identical records, timings too
        before = [r for r in partial.runs if r.fold == fold]
        assert [r for r in resumed.runs if r.fold == fold] == before
    fresh = app.run(compose(*[a for a in args if not a.startswith("hydra")]), tmp_path / "fresh")

    def numbers(result: results.JobResult) -> list:
        return [
            (r.fold, [(e.epoch, e.train_loss, e.test_error) for e in r.epochs]) for r in result.runs
        ]

    assert numbers(resumed) == numbers(fresh)


def test_one_bad_value_stops_a_multirun_before_any_job_trains(tmp_path):
    """Was: ``-m optimizer.lr=0.1,-1,0.2`` trained 0.1, stopped at -1, never ran 0.2. Now:
    every job of the sweep is validated first; each bad one is named, nothing trains, exit 2."""
    out = cli("-m", "optimizer.lr=0.1,-1,0.2,nan", *QUICK, "name=guard", cwd=tmp_path)
    message = no_traceback(out)
    assert out.returncode == 2
    assert "optimizer.lr=-1" in message and "optimizer.lr=nan" in message
    assert "2 of 4 jobs of the sweep are invalid; nothing was run" in message
    assert not list(tmp_path.rglob("result.json"))


def test_multirun_prints_one_progress_line_per_job_and_a_summary(tmp_path):
    out = cli("-m", "activation=relu,tanh,elu", *QUICK, "name=progress", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("[sweep] job")]
    assert [line.split()[2] for line in lines] == ["1/3", "2/3", "3/3"]
    assert all(" ok " in line and "elapsed" in line for line in lines)
    assert "left" in lines[0] and "left" not in lines[-1]
    assert "[sweep] 3/3 jobs ended (3 ok)" in out.stderr


def test_result_json_one_line_per_run_reads_back_equal_to_the_dict_with_nan_none_and_no_runs(
    tmp_path,
):
    """The written result.json is `to_dict` exactly (NaN, None, a diverged run, no runs at
    all), with the job's other fields and then one line per run."""
    record = results.EpochRecord
    runs = [
        results.FoldRun("custom", 0, 0.1, "ok", [record(0, 0.7, 0.5, 0.7, 0.5, 0.0, None, None)]),
        results.FoldRun(
            "torch", 1, 1e-3, "diverged",
            [record(0, 0.6, 0.4, 0.6, 0.4, 0.0, 0.5, 0.25),
             record(1, float("nan"), 1.0, float("inf"), 1.0, 0.01, float("nan"), 1.0)],
            diverged_epoch=1,
        ),
    ]  # fmt: skip
    job = results.JobResult(
        config={"framework": {"names": ["custom", "torch"]}, "folds": 2, "epochs": 1, "seed": 0},
        choices={"model": "mlp"}, versions={"torch": "2"}, threads=1, device="cpu",
        started="now", runs=runs,
    )  # fmt: skip
    for result in (job, results.JobResult(**{**vars(job), "runs": []})):
        path = tmp_path / "result.json"
        result.write(path)
        text = path.read_text()
        back = json.loads(text)
        assert json.dumps(back, sort_keys=True) == json.dumps(result.to_dict(), sort_keys=True)
        assert list(back)[-1] == "runs"  # the job's own fields first, readable at the top
        assert results.JobResult.read(path).to_dict().keys() == result.to_dict().keys()
        run_lines = [line for line in text.splitlines() if line.lstrip().startswith('{"framework"')]
        assert len(run_lines) == len(result.runs)
