"""The code fingerprint follows the source: a result is reused only by the code that computed it.

``results.code_files`` reads the imports (and the registry's lazy references) from the job's
entry point, so nothing is kept by hand; a change to any file the training reads makes a re-run
recompute, a change elsewhere (the report) does not.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench import registry
from bench.harness import results

ROOT = results.ROOT


def names(root: Path = ROOT) -> set[str]:
    return {path.relative_to(root).as_posix() for path in results.code_files(root)}


def test_code_files_are_what_the_job_imports_and_the_registry_names():
    files = names()
    # the training and what it reads, found from the imports
    for path in (
        "bench/harness/app.py",
        "bench/harness/engines.py",
        "bench/harness/training.py",
        "bench/registry.py",
        "framework/module.py",
        "framework/optim/sgd.py",
    ):
        assert path in files, path
    # imported by name only (a registry reference), never by an import statement
    for reference in registry.references():
        module = reference.partition(":")[0]
        if module.partition(".")[0] in results.PACKAGES:
            base = module.replace(".", "/")
            assert f"{base}.py" in files or f"{base}/__init__.py" in files, module
    # the report cannot change a result
    assert not [path for path in files if path.startswith("bench/report/")]


def test_a_new_module_the_training_imports_joins_the_fingerprint(tmp_path):
    tree = copy_tree(tmp_path)
    before = names(tree)
    (tree / "bench" / "harness" / "newpiece.py").write_text("VALUE = 1\n")
    training = tree / "bench" / "harness" / "training.py"
    training.write_text(training.read_text() + "\nfrom . import newpiece  # noqa\n")
    assert names(tree) == before | {"bench/harness/newpiece.py"}


def copy_tree(tmp_path: Path) -> Path:
    """The project's code in ``tmp_path/src``, as a checkout would hold it."""
    tree = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in results.PACKAGES:
        shutil.copytree(ROOT / package, tree / package, ignore=ignore)
    return tree


def run_job(tree: Path, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m bench`` from the code in ``tree`` (PYTHONPATH before the installed checkout)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    args = ["folds=2", "epochs=2", "data.n_train=100", "data.n_test=50", "batch_size=50"]
    return subprocess.run(
        [sys.executable, "-m", "bench", *args, "hydra.run.dir=job"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_resume_recomputes_after_a_change_to_a_file_the_training_reads(tmp_path):
    tree = copy_tree(tmp_path)
    code = "import bench, framework; print(bench.__file__, framework.__file__)"
    probe = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(tree)},
        cwd=tmp_path,  # as the job runs: not from the checkout, whose directory would come first
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.split() == [
        str(tree / "bench" / "__init__.py"),
        str(tree / "framework" / "__init__.py"),
    ], "the copy must be the code that runs"
    first = run_job(tree, tmp_path)
    assert first.returncode == 0, first.stderr
    result = tmp_path / "job" / "result.json"
    started = json.loads(result.read_text())["started"]
    again = run_job(tree, tmp_path)
    assert "done already, skipping" in again.stdout + again.stderr

    # the report does not compute results: editing it keeps the result
    figures = tree / "bench" / "report" / "figures.py"
    figures.write_text(figures.read_text() + "\n# a comment in the report\n")
    kept = run_job(tree, tmp_path)
    assert "done already, skipping" in kept.stdout + kept.stderr
    assert json.loads(result.read_text())["started"] == started

    # an activation the job trains with: the result is stale and is recomputed
    activation = tree / "framework" / "activation.py"
    activation.write_text(activation.read_text() + "\n# a change to the training code\n")
    changed = run_job(tree, tmp_path)
    assert changed.returncode == 0, changed.stderr
    assert "done already" not in changed.stdout + changed.stderr
    recomputed = json.loads(result.read_text())
    assert recomputed["started"] != started and recomputed["status"] == "ok"
