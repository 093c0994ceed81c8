"""Nothing lost, nothing silently wrong, round 2 (issue 23): atomic outputs, a report that
refuses a bad table, symlinked run directories, multiruns over experiments, and the one-line
answers a hostile probe was missing. Each test is named by the fault it reproduces.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from bench_utils import SMALL, cli, compose
from report_data import make_results

import framework as fw
from bench import atomic
from bench.harness import app, collect, config, results, sweep
from bench.report import build, speed

QUICK = ["epochs=2", "folds=2", "batch_size=50", "data.n_train=100", "data.n_test=50"]


def one_line(out: subprocess.CompletedProcess | str) -> str:
    """The stderr of a command that must answer in one line, never a traceback."""
    text = out if isinstance(out, str) else out.stderr
    assert "Traceback" not in text, text
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


def run_module(*args: str, limit: int | None = None, cwd: Path | None = None):
    """``python -m ARGS`` with an optional file-size limit (``ulimit -f``, in bytes)."""

    def limited() -> None:  # pragma: no cover - runs in the child
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-m", *args],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limited,
        env=env,
        cwd=cwd,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs directory of two small finished jobs."""
    root = tmp_path_factory.mktemp("runs") / "runs"
    for activation in ("relu", "tanh"):
        app.run(compose(*SMALL, f"activation={activation}"), root / "exp" / activation)
    return root


# -- 1. data loss: atomic writes -----------------------------------------------------------------
class Explodes:
    """A cell whose text raises: the frame's serialisation fails part way."""

    def __str__(self) -> str:
        raise OSError(28, "No space left on device")


def test_a_table_write_that_fails_part_way_keeps_the_old_table_readable(tmp_path, runs):
    out = tmp_path / "table.csv"
    good = collect.collect(runs)
    collect.save(good, out)
    before = out.read_bytes()
    bad = pd.concat([good, good.head(1).assign(error=Explodes())], ignore_index=True)
    with pytest.raises(OSError):
        collect.save(bad, out)
    assert out.read_bytes() == before and len(pd.read_csv(out)) == len(good)
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]  # no temporary file left


def test_collect_past_the_file_size_limit_keeps_the_old_parquet_and_exits_in_one_line(
    tmp_path, runs
):
    """Was: ``(ulimit -f 8; python -m bench.collect runs --out reports/results.parquet)`` left
    an unreadable 8 KB file where the table stood. Now: the old table is whole, exit 2."""
    out = tmp_path / "results.parquet"
    assert run_module("bench.collect", str(runs), "--out", str(out)).returncode == 0
    before = out.read_bytes()
    assert len(before) > 8192
    failed = run_module("bench.collect", str(runs), "--out", str(out), limit=8192)
    assert failed.returncode == 2
    assert "cannot write" in one_line(failed) and "previous table is kept" in failed.stderr
    assert out.read_bytes() == before and len(pd.read_parquet(out))
    assert [p.name for p in tmp_path.iterdir()] == ["results.parquet"]


def test_result_json_and_outputs_are_created_with_the_umask_mode_not_0600(tmp_path):
    """Was: result.json was 0600 (mkstemp) whatever the umask: a colleague could not read it."""
    previous = os.umask(0o022)
    try:
        app.run(compose(*SMALL), tmp_path / "job")
        atomic.write_text(tmp_path / "note.md", "x")
    finally:
        os.umask(previous)
    assert (tmp_path / "job" / "result.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "note.md").stat().st_mode & 0o777 == 0o644


def test_a_figure_write_that_fails_keeps_the_old_figure(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from bench.report import figures

    fig = Figure()
    fig.add_subplot().plot([0, 1])
    png, svg = figures._save(fig, tmp_path, "f")
    before = png.read_bytes()

    def broken(self, fname, **kwargs):
        Path(fname).write_bytes(b"half a pn")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(OSError):
        figures._save(fig, tmp_path, "f")
    assert png.read_bytes() == before and svg.stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png", "f.svg"]


# -- 2. the report validates its table -----------------------------------------------------------
@pytest.fixture(scope="module")
def small_results() -> pd.DataFrame:
    return make_results(experiments=["fig4_losses"], folds=2, epochs=3)


def test_report_of_a_table_holding_every_row_twice_drops_the_copies_and_says_so(
    tmp_path, small_results
):
    """Was: every row twice gave 20 folds with a shrunken sd, exit 0, without a word."""
    single, double = tmp_path / "single.parquet", tmp_path / "double.parquet"
    small_results.to_parquet(single)
    pd.concat([small_results, small_results]).to_parquet(double)
    assert build.main(["--results", str(single), "--out", str(tmp_path / "a")]) == 0
    assert build.main(["--results", str(double), "--out", str(tmp_path / "b")]) == 0
    readme = (tmp_path / "b" / "README.md").read_text()
    assert f"{len(small_results)} rows of the results file repeat another row exactly" in readme
    for name in ("summary.csv", "claims.csv"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()


@pytest.mark.parametrize(
    ("column", "value", "words"),
    [
        ("test_error", -0.1, "column 'test_error': 1 value(s) out of range"),
        ("fold", 1.5, "column 'fold': 1 value(s) are not an integer"),
        ("train_seconds", float("inf"), "column 'train_seconds': 1 value(s) out of range"),
        ("train_loss", "abc", "column 'train_loss': 1 value(s) are not a number"),
    ],
    ids=["negative-test-error", "non-integer-fold", "infinite-time", "text-loss"],
)
def test_report_refuses_a_bad_table_in_one_line_exit_2(
    tmp_path, small_results, capsys, column, value, words
):
    bad = small_results.astype({column: object}).copy()
    bad.loc[bad.index[3], column] = value
    path = tmp_path / "bad.csv"
    bad.to_csv(path, index=False)
    assert build.main(["--results", str(path), "--out", str(tmp_path / "out")]) == 2
    assert words in one_line(capsys.readouterr().err)
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_report_notes_a_nan_test_error_on_a_fold_not_marked_diverged(tmp_path, small_results):
    bad = small_results.copy()
    bad.loc[bad.index[3], "test_error"] = float("nan")
    report = build.build_report(bad, tmp_path)
    assert "hold no test error (NaN)" in (tmp_path / "README.md").read_text()
    assert report.files


@pytest.mark.parametrize("drop", [["lr"], ["lr", "status", "seed"], "optional"])
def test_report_without_an_optional_column_degrades_that_section_with_a_note(tmp_path, drop):
    """Was: a table holding only the required columns, or one without ``lr``, gave a
    TypeError in views.lr_selection."""
    from bench.report import views

    table = make_results(experiments=["fig3_tuned", "fig4_losses"], folds=2, epochs=3)
    table = table[list(views.REQUIRED_COLUMNS)] if drop == "optional" else table.drop(columns=drop)
    path = tmp_path / "t.parquet"
    table.to_parquet(path)
    assert build.main(["--results", str(path), "--out", str(tmp_path / "out")]) == 0
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "the results have no `lr` column" in readme and "`fig3_tuned`" in readme


# -- 3. symlinks ---------------------------------------------------------------------------------
def test_collect_follows_a_symlinked_run_directory_and_survives_a_symlink_loop(tmp_path, runs):
    """Was: with ``runs/expB -> /scratch/expB`` collect exited 0 without expB."""
    scratch = tmp_path / "scratch" / "expB"
    app.run(compose(*SMALL, "activation=elu"), scratch / "elu")
    (scratch / "loop").symlink_to(tmp_path / "scratch")  # a loop back up
    local = tmp_path / "runs"
    (local / "expA").mkdir(parents=True)
    app.run(compose(*SMALL), local / "expA" / "relu")
    (local / "expB").symlink_to(scratch)
    (local / "again").symlink_to(scratch)  # a second link to the same directory
    found = collect.collect_runs(local)
    assert found.jobs == 2 and not found.problems
    assert set(found.frame["activation"]) == {"relu", "elu"}


# -- 4. multirun over experiments ----------------------------------------------------------------
@pytest.mark.parametrize(
    "sweep_args", [["experiment=fig2_activations,fig4_losses"], ["name=a,b", *QUICK]]
)
def test_multirun_over_experiment_or_name_is_refused_before_anything_runs(tmp_path, sweep_args):
    """Was: ``-m experiment=fig2_activations,fig4_losses`` ran one default job per experiment
    and ended "0/2 jobs ended, 2 without a result", exit 0."""
    out = cli("-m", *sweep_args, cwd=tmp_path)
    assert out.returncode == 2
    line = one_line(out)
    assert "is not supported" in line and "one command per" in line
    assert not list(tmp_path.rglob("result.json"))


def test_two_sweeps_sharing_a_directory_each_count_their_own_jobs(tmp_path, monkeypatch):
    """Was: two identical sweeps started at once printed "job 6/3", "-3 without a result"."""
    monkeypatch.setattr(sweep, "SWEEP_ID", "other")
    sweep.record_job(tmp_path, "before", "ok", 1.0)  # an earlier sweep's line
    progress = sweep.Progress(tmp_path, total=2, sweep_id="mine")
    for job, sweep_id in [("a", "mine"), ("a", "other"), ("b", "other"), ("b", "mine")]:
        monkeypatch.setattr(sweep, "SWEEP_ID", sweep_id)
        sweep.record_job(tmp_path, job, "ok", 1.0)
    assert progress.stop().startswith("[sweep] 2/2 jobs ended (2 ok) in ")


# -- 6, 7, 8: one-line answers -------------------------------------------------------------------
def _job(tmp_path: Path, runs_name: str, edit) -> Path:
    app.run(compose(*SMALL), tmp_path / runs_name / "good")
    payload = json.loads((tmp_path / runs_name / "good" / "result.json").read_text())
    edit(payload)
    bad = tmp_path / runs_name / "bad" / "result.json"
    bad.parent.mkdir()
    bad.write_text(payload if isinstance(payload, str) else json.dumps(payload))
    return tmp_path / runs_name


def _fold(payload: dict) -> None:
    payload["runs"][0]["fold"] = 1.5


def _threads(payload: dict) -> None:
    payload["threads"] = 2**70


def _batch_size(payload: dict) -> None:
    payload["config"]["batch_size"] = 2**64


def _failed_epochs(payload: dict) -> None:
    payload.update(status="failed", error="RuntimeError: x")
    payload["config"]["epochs"] = 2**64


@pytest.mark.parametrize(
    "edit",
    [_fold, _threads, _batch_size, _failed_epochs],
    ids=["non-integer-fold", "threads-2**70", "batch-size-2**64", "failed-epochs-2**64"],
)
def test_one_result_with_a_value_the_table_cannot_hold_is_listed_and_collect_goes_on(
    tmp_path, edit
):
    """Was: ``TypeError: cannot safely cast`` or ``OverflowError`` stopped the whole collect."""
    runs_dir = _job(tmp_path, "runs", edit)
    out = run_module("bench.collect", str(runs_dir), "--out", str(tmp_path / "t.parquet"))
    assert out.returncode == 3 and "Traceback" not in out.stderr
    assert "unreadable job" in out.stderr and "bad" in out.stderr
    assert set(pd.read_parquet(tmp_path / "t.parquet")["job"]) == {"good"}


def test_a_deeply_nested_result_is_unreadable_not_a_recursion_error(tmp_path):
    path = tmp_path / "runs" / "deep" / "result.json"
    path.parent.mkdir(parents=True)
    path.write_text("[" * 100_000 + "]" * 100_000)
    found = collect.collect_runs(tmp_path / "runs")
    assert [p.kind for p in found.problems] == ["unreadable"]
    assert "nested too deeply" in found.problems[0].reason


def test_an_override_set_past_the_file_name_limit_gets_a_hashed_directory(tmp_path):
    """Was: ``lr_grid`` with 40 values gave ``OSError: File name too long``."""
    grid = "lr_grid=[" + ",".join(f"{0.001 * (i + 1):g}" for i in range(40)) + "]"
    out = cli(grid, *QUICK, "engine=stacked", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    (path,) = tmp_path.rglob("result.json")
    assert path.parent.name.startswith("overrides-") and len(path.parent.name) < 40
    assert grid in results.JobResult.read(path).overrides
    assert config.job_dirname("activation=relu") == "activation=relu"


def test_a_result_write_that_fails_at_the_end_of_a_job_is_one_line_exit_1(tmp_path):
    """Was: a full disk during a job ended in ``OSError ENOSPC`` at the final write."""
    (tmp_path / "job" / "result.json").mkdir(parents=True)  # every write of it fails
    out = cli(*QUICK, "hydra.run.dir=job", cwd=tmp_path)
    assert out.returncode == 1
    assert "cannot write" in out.stderr and "re-run the same command" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_runs_directory_that_cannot_be_written_is_one_line_exit_2(tmp_path):
    """Was: a read-only runs directory gave ``ValueError: Unable to configure handler 'file'``
    (here ``runs`` is a file: the same refusal, whoever runs the test)."""
    (tmp_path / "runs").write_text("")
    for args in (QUICK, ["-m", "activation=relu,tanh", *QUICK]):
        out = cli(*args, cwd=tmp_path)
        assert out.returncode == 2 and "cannot write the" in one_line(out)


@pytest.mark.parametrize(
    ("content", "words"),
    [(None, "not found"), ("", "empty file"), ('{"bench', "not valid JSON"), ("{}", "not a")],
    ids=["missing", "empty", "broken", "foreign"],
)
def test_speed_summary_of_a_bad_json_is_one_line_exit_2(tmp_path, capsys, content, words):
    """Was: raw FileNotFoundError / KeyError / JSONDecodeError."""
    path = tmp_path / "bench.json"
    if content is not None:
        path.write_text(content)
    assert speed.main([str(path), "--out", str(tmp_path / "out")]) == 2
    assert words in one_line(capsys.readouterr().err)


def test_report_names_the_directory_or_file_at_fault_not_the_results(
    tmp_path, small_results, capsys
):
    """Was: an output directory that is a file was blamed on the results file; a directory
    passed as --results was "not found"."""
    table = tmp_path / "t.parquet"
    small_results.to_parquet(table)
    (tmp_path / "afile").write_text("")
    assert build.main(["--results", str(table), "--out", str(tmp_path / "afile")]) == 2
    assert "is a file, not a directory" in one_line(capsys.readouterr().err)
    assert build.main(["--results", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "is a directory, not a results file" in one_line(capsys.readouterr().err)


def test_a_result_holding_a_run_twice_is_named_and_a_rerun_repairs_it(tmp_path):
    """Was: "holds runs [] the config does not ask for", the second copy kept, and a re-run
    did not repair it."""
    cfg = compose(*SMALL)
    job = tmp_path / "runs" / "job"
    app.run(cfg, job)
    payload = json.loads((job / "result.json").read_text())
    payload["runs"].append(payload["runs"][0])
    (job / "result.json").write_text(json.dumps(payload))
    found = collect.collect_runs(tmp_path / "runs")
    assert "holds 1 run(s) twice" in found.problems[0].reason
    assert not found.frame.duplicated(["fold", "epoch", "framework"]).any()
    repaired = app.run(cfg, job)
    assert repaired.incomplete() is None and len(repaired.runs) == 2


@pytest.mark.parametrize("name", ["x.CSV", "x.csv.gz", "X.Parquet"])
def test_out_suffix_is_read_in_any_case_and_gzip_csv_is_csv(tmp_path, runs, name):
    """Was: ``--out x.CSV`` or ``x.csv.gz`` silently wrote Parquet."""
    assert collect.main([str(runs), "--out", str(tmp_path / name)]) == 0
    table = collect.read_table(tmp_path / name)
    assert len(table) == len(collect.collect(runs))
    if "csv" in name.lower():
        pd.read_csv(tmp_path / name)  # really CSV (gzip inferred by pandas from .gz)


def test_out_with_an_unknown_suffix_is_refused(tmp_path, runs, capsys):
    with pytest.raises(SystemExit) as stop:
        collect.main([str(runs), "--out", str(tmp_path / "x.txt")])
    assert stop.value.code == 2 and "unknown table format" in capsys.readouterr().err


def test_device_cpu_index_is_the_same_configuration_as_cpu():
    base = {"device": "cpu", "seed": 0, "epochs": 3}
    assert collect.config_id({**base, "device": "cpu:1"}) == collect.config_id(base)
    assert collect.config_id({**base, "device": "cuda:1"}) != collect.config_id(base)


def test_a_layer_used_twice_in_one_sequential_is_refused_at_construction():
    """Was: "backward called twice" at the first backward."""
    relu = fw.ReLU()
    with pytest.raises(ValueError, match="argument 3 is the same ReLU object as argument 1"):
        fw.Sequential(fw.Linear(2, 4), relu, fw.Linear(4, 4), relu)


def test_ctrl_c_is_one_line_saying_the_state_is_consistent_exit_130(tmp_path):
    """Was: a KeyboardInterrupt traceback."""
    args = ["folds=20", "epochs=100", "data.n_train=400", "batch_size=20", "engine=sequential"]
    process = subprocess.Popen(
        [sys.executable, "-m", "bench", *args, "hydra.run.dir=job"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    path = tmp_path / "job" / "result.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not path.exists():
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    if process.returncode == 0:
        pytest.skip("the job finished before the interrupt")
    assert process.returncode == 130
    assert "state is consistent" in err and "re-run the same command" in err
    assert "Traceback" not in err
    assert results.JobResult.read(path).done_folds()  # the finished folds are kept
