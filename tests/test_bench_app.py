"""The job: result files, reproducibility, resume, failure isolation, divergence."""

from __future__ import annotations

import json
import math

import pytest
from bench_utils import SMALL, compose
from hydra.errors import ConfigCompositionException

from bench.harness import app, collect, engines, results


def strip_timing(value):
    """The result without its clock-dependent fields."""
    if isinstance(value, dict):
        return {k: strip_timing(v) for k, v in value.items() if k not in results.TIMING_FIELDS}
    if isinstance(value, list):
        return [strip_timing(v) for v in value]
    return value


def test_result_json_holds_config_versions_and_every_fold_epoch(tmp_path):
    cfg = compose(*SMALL, "framework=both")
    app.run(cfg, tmp_path)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "ok" and result["error"] is None
    assert result["config"]["epochs"] == 3 and result["choices"]["optimizer"] == "sgd"
    assert set(result["versions"]) == {"python", "torch", "git_commit", "code"}
    assert result["threads"] == 1
    runs = {(r["framework"], r["fold"]) for r in result["runs"]}
    assert runs == {(f, k) for f in ("custom", "torch") for k in (0, 1)}
    for run in result["runs"]:
        assert [e["epoch"] for e in run["epochs"]] == [0, 1, 2, 3]
        seconds = [e["train_seconds"] for e in run["epochs"]]
        assert seconds[0] == 0 and seconds == sorted(seconds) and seconds[-1] > 0
        assert all(0 <= e["test_error"] <= 1 for e in run["epochs"])
    assert not list(tmp_path.glob(".result.json.*"))  # the temp file was renamed away


def test_same_command_twice_gives_identical_results_but_timing(tmp_path):
    cfg = compose(*SMALL, "framework=both", "optimizer=adam", "activation=elu")
    first = app.run(cfg, tmp_path / "a")
    second = app.run(cfg, tmp_path / "b")
    assert strip_timing(first.to_dict()) == strip_timing(second.to_dict())
    on_disk = [json.loads((tmp_path / d / "result.json").read_text()) for d in "ab"]
    assert strip_timing(on_disk[0]) == strip_timing(on_disk[1])


def test_finished_job_is_skipped_not_recomputed(tmp_path, monkeypatch):
    cfg = compose(*SMALL)
    first = app.run(cfg, tmp_path)
    monkeypatch.setattr(engines, "run_unit", lambda *a: pytest.fail("recomputed a finished job"))
    assert app.run(cfg, tmp_path) == first


def test_changed_config_in_same_dir_is_recomputed(tmp_path):
    app.run(compose(*SMALL), tmp_path)
    again = app.run(compose(*SMALL, "seed=5"), tmp_path)
    assert again.config["seed"] == 5


def test_result_of_other_code_is_recomputed_not_reused(tmp_path, monkeypatch):
    first = app.run(compose(*SMALL), tmp_path)
    monkeypatch.setattr(results, "code_hash", lambda: "changed-framework")
    again = app.run(compose(*SMALL), tmp_path)
    assert again.versions["code"] == "changed-framework" != first.versions["code"]


def test_half_written_result_is_never_read(tmp_path):
    (tmp_path / "result.json").write_text('{"schema": 2, "status": "ok", "config"')  # torn
    with pytest.raises(results.ResultError, match="not valid JSON"):
        results.JobResult.read(tmp_path / "result.json")
    result = app.run(compose(*SMALL), tmp_path)  # recomputed, not trusted
    assert result.status == "ok" and result.runs


def test_job_that_raises_records_failed_and_collect_still_works(tmp_path, monkeypatch):
    def explode(job, unit):
        raise RuntimeError("boom in fold")

    app.run(compose(*SMALL, "activation=tanh"), tmp_path / "good")
    monkeypatch.setattr(engines, "run_unit", explode)
    failed = app.run(compose(*SMALL), tmp_path / "bad")
    assert failed.status == "failed" and "boom in fold" in failed.error
    monkeypatch.undo()
    # a failed job is retried on the next run, not skipped
    assert app.run(compose(*SMALL), tmp_path / "bad").status == "ok"
    monkeypatch.setattr(engines, "run_unit", explode)
    app.run(compose(*SMALL, "loss=bce"), tmp_path / "bad2")
    frame = collect.collect(tmp_path)
    assert set(frame["status"]) == {"ok", "failed"}
    bad = frame[frame["status"] == "failed"]
    assert len(bad) == 1 and bad["error"].str.contains("boom").all()
    assert bad["epoch"].isna().all()


def test_nan_loss_stops_and_records_diverged_with_epoch(tmp_path, monkeypatch):
    cfg = compose(*SMALL, "framework=both", "loss=bce", "optimizer.lr=1e30", "epochs=20")
    result = app.run(cfg, tmp_path)
    assert result.status == "diverged"
    for run in result.runs:
        assert run.status == "diverged"
        epoch = run.diverged_epoch
        assert 1 <= epoch < 20 and len(run.epochs) == epoch + 1  # stopped there
        assert not math.isfinite(run.epochs[-1].train_loss)
    frame = collect.collect(tmp_path)
    assert set(frame["status"]) == {"diverged"}
    # a finished, diverged job is a result: not recomputed
    monkeypatch.setattr(engines, "run_unit", lambda *a: pytest.fail("recomputed a diverged job"))
    assert app.run(cfg, tmp_path).started == result.started


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("optimizer.lr=-1", "optimizer.lr"),
        ("folds=0", "folds"),
        ("epochs=0", "epochs"),
        ("batch_size=201", "batch_size"),
        ("optimizer=adam optimizer.betas=[0.9,1.0]", "optimizer.betas"),
        ("optimizer.nesterov=true", "optimizer.nesterov"),
        ("device=mps", "device"),
        ("device=cuda:0", "device"),
        ("device=gpu", "device"),
        ("data.radius=0.75", "data.radius"),
        ("activation=leaky_relu activation.negative_slope=nan", "activation.negative_slope"),
        ("name=", "name"),
    ],
)
def test_bad_value_raises_config_error_naming_key_before_training(
    tmp_path, monkeypatch, override, key
):
    monkeypatch.setattr(engines, "run_unit", lambda *a: pytest.fail("trained on a bad config"))
    with pytest.raises(app.config.ConfigError, match=key.replace("[", r"\[")):
        app.run(compose(*SMALL, *override.split()), tmp_path)
    assert not (tmp_path / "result.json").exists()


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("activation.negative_slope=0.3", "negative_slope"),  # ReLU has no slope
        ("activation=leaky_relu activation.alpha=2", "alpha"),  # only ELU has alpha
        ("model.channels=[4]", "channels"),  # only the CNN has channels
        ("data.noise=0.1", "noise"),  # the disk has no noise
    ],
)
def test_an_option_of_another_component_is_refused_when_composing(override, key):
    """Each option is typed by its own entry's config: Hydra refuses a key it does not have."""
    with pytest.raises(ConfigCompositionException, match=key):
        compose(*override.split())


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["dataset=digits", "data.n_train=1000", "data.n_test=100"], "loss"),  # mse on digits
        (["model=cnn", "engine=sequential"], "model"),  # a CNN on 2-d points
        (["loss=ce"], "loss"),  # cross-entropy on the binary disk task
        (["experiment=digits", "hydra.mode=RUN", "data.n_train=1700"], "data.n_train"),
        (
            ["experiment=digits", "hydra.mode=RUN", "model=cnn", "model.channels=[4,4,4,4]"],
            "model.channels",
        ),
    ],
    ids=[
        "digits-mse",
        "cnn-on-disk",
        "ce-on-disk",
        "digits-too-many-points",
        "cnn-blocks-shrink-the-image-to-nothing",
    ],
)
def test_dataset_model_and_loss_must_fit_together(tmp_path, overrides, key):
    with pytest.raises(app.config.ConfigError, match=key.replace(".", r"\.")):
        app.run(compose(*overrides), tmp_path)
