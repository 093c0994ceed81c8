"""`python -m bench.study`: the example study end to end at small settings (batches, one line
per batch, resume, report), a claim added by a YAML edit alone, and jobs extended batch by
batch without recomputing a fold."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest
import yaml

from bench import study
from bench.harness import catalog

ROOT = catalog.CONF_DIR.parents[1]
SMALL = ["epochs=2", "data.n_train=100", "data.n_test=100", "batch_size=50"]


def _study(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench.study", *args], capture_output=True,
                          text=True, cwd=ROOT, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    base = tmp_path_factory.mktemp("example")
    runs, out = base / "runs", base / "reports" / "example"
    done = _study("example", "--runs", str(runs), "--out", str(out), "--launcher", "basic",
                  "--batch", "2", "--budget-replicates", "4", *SMALL)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return runs, out, done.stdout


def test_the_example_study_writes_its_report_with_claims_csv_and_readme(example) -> None:
    _, out, _ = example
    frame = pd.read_csv(out / "claims.csv")
    assert list(frame["key"]) == [c.key for c in study.load("example").claims]
    assert set(frame["design"]) == {"sequential"}
    assert (frame["n_folds"] <= 4).all() and (frame["n_folds"] >= 2).all()
    readme = (out / "README.md").read_text()
    assert readme.startswith("# Study `example`")
    assert "### Replicates each claim took" in readme and "fig_moons.png" in readme
    assert (out / "fig_moons.png").is_file() and (out / "results.parquet").is_file()
    state = study.read_state(out)
    assert state["design"] == "sequential" and state["looks"][0]["replicates"] == 2


def test_one_progress_line_per_batch_with_replicates_undecided_claims_and_budget(example) -> None:
    _, _, stdout = example
    lines = [line for line in stdout.splitlines() if line.startswith("[study example] batch")]
    assert 1 <= len(lines) <= 2
    assert lines[0].startswith("[study example] batch 1: 2 replicates; ")
    assert all("claims undecided" in ln and "budget left:" in ln for ln in lines)
    budget = {1: "2 replicates", 2: "0 replicates"}
    for number, line in enumerate(lines, 1):
        assert budget[number] in line


def test_every_claim_says_how_many_replicates_it_took_or_that_the_budget_ran_out(example) -> None:
    _, out, _ = example
    frame = pd.read_csv(out / "claims.csv")
    decided = frame["verdict"].isin(["supported", "contradicted"])
    assert frame.loc[decided, "decided_at"].notna().all()
    assert frame.loc[~decided, "decided_at"].isna().all()
    assert frame.loc[~decided, "stopped"].str.startswith("budget spent").all()


def test_a_rerun_continues_from_the_replicates_on_disk(example, tmp_path: Path) -> None:
    runs, _out, _ = example
    before = {p: p.stat().st_mtime_ns for p in runs.rglob("result.json")}
    again = _study("example", "--runs", str(runs), "--out", str(tmp_path), "--launcher",
                   "basic", "--batch", "2", "--budget-replicates", "4", *SMALL)  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    first = next(ln for ln in again.stdout.splitlines() if ln.startswith("[study example]"))
    assert "batch 1: 4 replicates" in first  # nothing retrained: the finished folds are kept
    assert {p: p.stat().st_mtime_ns for p in runs.rglob("result.json")} == before


def test_a_better_claim_added_to_the_yaml_appears_after_the_report_step_alone(
    example, tmp_path: Path
) -> None:
    _, out, _ = example
    data = yaml.safe_load((study.STUDY_DIR / "example.yaml").read_text())
    data["claims"].append({"key": "adamw_beats_adam", "claim": "AdamW beats Adam",
                           "kind": "better", "experiment": "moons", "column": "optimizer",
                           "levels": ["adamw"], "than": ["adam"],
                           "pins": {"activation": "relu", "framework": "torch"}})  # fmt: skip
    mine = tmp_path / "example.yaml"
    mine.write_text(yaml.safe_dump(data))
    report = tmp_path / "report"
    report.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "bench.report", "--study", str(mine),
         "--results", str(out / "results.parquet"), "--out", str(report)],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    frame = pd.read_csv(report / "claims.csv")
    assert frame["key"].iloc[-1] == "adamw_beats_adam"
    assert frame["verdict"].iloc[-1] != "not evaluated"


def test_a_job_asked_for_more_folds_extends_its_result_without_recomputing(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "bench", "experiment=moons", "hydra/launcher=basic",
               f"hydra.sweep.dir={tmp_path}", "activation=relu", "optimizer=adam",
               "hydra.job.config.override_dirname.exclude_keys="
               "[experiment,name,hydra/launcher,hydra.launcher.n_jobs,folds]", *SMALL]  # fmt: skip
    from bench.harness.results import JobResult

    seen = []
    for folds in (2, 3, 2):
        done = subprocess.run([*command, f"folds={folds}"], capture_output=True, text=True,
                              cwd=ROOT, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        (path,) = tmp_path.rglob("result.json")  # one directory: the folds are not in its name
        seen.append(JobResult.read(path))
    first, extended, last = seen
    assert extended.folds == 3 and extended.incomplete() is None
    assert last.to_dict() == extended.to_dict()  # asked for 2 of 3 finished: kept as is
    timed = {(r.framework, r.fold): asdict(r) for r in extended.runs}
    assert set(timed) == {(f, k) for f in ("custom", "torch") for k in range(3)}
    for run in first.runs:  # folds 0 and 1 kept, their measured seconds included
        assert timed[(run.framework, run.fold)] == asdict(run)


def test_the_papers_sweeps_run_at_its_replicates_but_a_crossed_design_keeps_its_own_folds(
    tmp_path: Path,
) -> None:
    from bench.study import run

    paper = study.load("paper")
    runner = run.Runner(paper, tmp_path, ["epochs=3"], "joblib")
    commands = {e: runner.command(e, 30) for e in paper.experiments}
    for experiment, command in commands.items():
        assert f"experiment={experiment}" in command and command[-1] == "epochs=3"
        assert ("folds=30" in command) == (experiment != "variance_sources"), command
    done = subprocess.run([*commands["variance_sources"], "--cfg", "job"], capture_output=True,
                          text=True, cwd=ROOT, check=False)  # fmt: skip
    assert done.returncode == 0 and "folds: 216" in done.stdout, done.stderr[-2000:]


def test_a_folds_override_sets_the_studys_replicates(tmp_path: Path, monkeypatch) -> None:
    from bench.study import run

    seen = {}
    monkeypatch.setattr(run, "run_fixed", lambda s, r, res: seen.update(s=s, r=r) or (2, "x"))
    assert (
        run.main(
            [
                "paper",
                "--runs",
                str(tmp_path),
                "--out",
                str(tmp_path / "out"),
                "folds=3",
                "epochs=2",
            ]
        )
        == 2
    )
    assert seen["s"].replicates == 3 and seen["r"].overrides == ["epochs=2"]
