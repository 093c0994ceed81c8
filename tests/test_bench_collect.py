"""Collect: one tidy table, no fold counted twice, and the report never pools other settings."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from bench_utils import SMALL, compose

from bench.harness import app, collect, engines
from bench.report import tables, views


def final_test_error(frame: pd.DataFrame) -> pd.Series:
    last = frame[frame["epoch"] == frame["epoch"].max()]
    return last.set_index("fold")["test_error"]


def test_rows_equal_a_direct_read_of_result_json(tmp_path):
    result = app.run(compose(*SMALL, "framework=both", "name=fig5_frameworks"), tmp_path / "job")
    frame = collect.collect(tmp_path)
    assert len(frame) == 2 * 2 * 4  # frameworks × folds × epochs 0..3
    for run in result.runs:
        rows = frame[(frame["framework"] == run.framework) & (frame["fold"] == run.fold)]
        assert rows["test_error"].tolist() == [e.test_error for e in run.epochs]
        assert rows["train_seconds"].tolist() == [e.train_seconds for e in run.epochs]
    assert frame["config_id"].nunique() == 1 and frame["job"].eq("job").all()


def test_more_folds_of_the_same_config_are_merged_not_double_counted(tmp_path):
    app.run(compose(*SMALL, "folds=1"), tmp_path / "folds=1")
    app.run(compose(*SMALL, "folds=3"), tmp_path / "folds=3")
    frame = collect.collect(tmp_path)
    assert sorted(frame["fold"].unique()) == [0, 1, 2]
    assert not frame.duplicated(["framework", "fold", "epoch"]).any()


def test_report_keeps_newest_settings_and_lists_the_other_job(tmp_path):
    base = [*SMALL, "framework=both", "name=fig5_frameworks", "engine=sequential"]
    app.run(compose(*base, "batch_size=20"), tmp_path / "old")
    app.run(compose(*base), tmp_path / "new")
    frame = collect.collect(tmp_path)
    assert frame["config_id"].nunique() == 2  # the results file keeps both
    prepared = views.prepare(frame)
    assert set(prepared["job"]) == {"new"}
    assert any("`old`" in note for note in prepared.attrs["ignored"])
    table = tables.table3(prepared)
    new_rows = frame[(frame["job"] == "new") & (frame["framework"] == "custom")]
    expected = 1 - final_test_error(new_rows).mean()
    custom = table[table["framework"] == "custom"].iloc[0]
    assert custom["n_folds"] == 2
    assert custom["test_acc_mean"] == pytest.approx(expected)


def test_collect_cli_exits_3_when_a_job_failed_but_writes_the_table(tmp_path, monkeypatch):
    app.run(compose(*SMALL), tmp_path / "runs" / "good")
    monkeypatch.setattr(engines, "run_unit", lambda *a: (_ for _ in ()).throw(RuntimeError("x")))
    app.run(compose(*SMALL, "loss=bce"), tmp_path / "runs" / "bad")
    out = tmp_path / "table.parquet"
    assert collect.main([str(tmp_path / "runs"), "--out", str(out)]) == 3
    assert set(pd.read_parquet(out)["status"]) == {"ok", "failed"}


def test_config_id_merges_fold_counts_except_in_a_crossed_design():
    """More folds of the same configuration are more replicates of it (merged); in a crossed
    design the fold count sets which draws fold k combines, so it is another configuration."""
    base = {"seed": 0, "epochs": 3, "vary": "all"}
    assert collect.config_id(base | {"folds": 3}) == collect.config_id(base | {"folds": 10})
    crossed = base | {"vary": "crossed"}
    assert collect.config_id(crossed | {"folds": 8}) != collect.config_id(crossed | {"folds": 27})


def test_jobs_read_in_worker_processes_give_the_same_collection(tmp_path, monkeypatch):
    """A good job, a failed one, a partial one and an unreadable one: read in two processes or
    here, the same table, problems (in order) and counts."""
    app.run(compose(*SMALL), tmp_path / "good")
    app.run(compose(*SMALL, "folds=3"), tmp_path / "partial")
    held = json.loads((tmp_path / "partial" / "result.json").read_text())
    held["runs"], held["status"] = held["runs"][:-1], "running"  # a killed job: one run short
    (tmp_path / "partial" / "result.json").write_text(json.dumps(held))
    (tmp_path / "unreadable").mkdir()
    (tmp_path / "unreadable" / "result.json").write_text('{"schema": ')
    monkeypatch.setattr(engines, "run_unit", lambda *a: (_ for _ in ()).throw(RuntimeError("x")))
    app.run(compose(*SMALL, "loss=bce"), tmp_path / "failed")
    here, there = collect.collect_runs(tmp_path), collect.collect_runs(tmp_path, workers=2)
    pd.testing.assert_frame_equal(here.frame, there.frame)
    assert here.problems == there.problems and here.statuses == there.statuses
    assert [p.kind for p in here.problems] == ["failed", "partial", "unreadable"]
