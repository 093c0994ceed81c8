"""The custom framework against torch.nn, side by side: each group holds both frameworks, so
pytest-benchmark prints them together with its relative column. ``make bench`` times them and
``python -m bench.speed`` turns the JSON into reports/benchmarks/summary.md and ratio.png.

- ``run-sgd``, ``run-adam``: a whole training run of the Table III job (2-25-25-25-1, ReLU, MSE,
  1000 points, batch 100, 100 epochs) through the harness's own loop, ``bench.training.train``,
  with the adapters ``bench.harness.engines.adapter`` builds: what the sweep runs. Each round
  starts from a fresh model (untimed setup), since training changes the weights.
- ``step-sgd``, ``step-adam``: one training step (forward, loss, backward, optimizer step)
  through the same adapters, on the same model round after round. A step costs the same
  whatever the weights' values (the shapes fix the work), so the model keeps training over the
  fold's mini-batches in a fixed cycle; the check at the end only says it stayed finite.
- ``scale-wW-bB``: the same step at hidden width W and batch size B (SGD), to show where the
  framework's advantage (Python and autograd overhead, not arithmetic) ends.
  ``scale-adam-w1024-b1000``: the largest point with Adam.

The two frameworks of a group are timed interleaved: blocks of steps of one alternate with
blocks of the other (conftest's ``interleaved``), and before each timed run a run of the other;
each benchmark keeps its rounds beside the other's just before (``extra_info["paired"]``), from
which the report takes the ratio block by block. No test asserts a time. With
``--benchmark-disable`` (``make test``) each target runs once.
"""

from __future__ import annotations

import functools
import itertools
import math
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from pairing import paired_blocks

from bench.harness import config, data, engines
from bench.harness.spec import JobSpec
from bench.harness.training import CustomAdapter, TorchAdapter, train

CONF = Path(__file__).resolve().parents[2] / "bench" / "conf"

FRAMEWORKS = ["custom", "torch"]
RUN_ROUNDS = 15
"""Timed rounds of a whole run (each about 0.1–0.6 s), after one warm-up round."""
RUN_EPOCHS = 100  # the Table III job; 2 when benchmarks are disabled (make test)
WIDTHS = [25, 64, 256, 1024]
BATCHES = [10, 100, 1000]


@functools.cache
def job_config(*overrides: str) -> JobSpec:
    """The job ``python -m bench framework=both folds=1 OVERRIDES`` runs (by default the
    Table III job), as the spec the harness trains."""
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        job = compose("config", overrides=["framework=both", "folds=1", *overrides])
    return config.job_spec(job)


def fold_data(job: JobSpec, fold: int = 0) -> data.Split:
    """The fold's data on the job's device and dtype, as the engines make them."""
    return engines.split(job, fold)


def fresh_adapter(job: JobSpec, framework: str) -> CustomAdapter | TorchAdapter:
    """A freshly initialised adapter of ``framework`` (one model, as the sequential engine
    trains it), from fold 0's initial weights (the same for both frameworks, as in the sweep)."""
    init = engines.stream(job, 0, "init")
    return engines.adapter(job, framework, [init], job.training.lrs, stacked=False)


def _minibatches(job: JobSpec, split: data.Split):
    """The fold's training points in fixed mini-batches of the job's batch size, cycled."""
    size = job.training.batch_size
    x, y = split.x_train.split(size), split.y_train.split(size)
    return itertools.cycle(list(zip(x, y, strict=True)))


def _stepper(job: JobSpec, framework: str, split: data.Split):
    """``(step, finite)`` of a fresh ``framework`` adapter on the fold's mini-batches, cycled."""
    adapter = fresh_adapter(job, framework)
    batches = _minibatches(job, split)

    def step() -> None:
        adapter.step(*next(batches))

    def finite() -> bool:
        (loss,), _ = adapter.evaluate(split.x_train, split.y_train)  # one model
        return math.isfinite(loss)

    return step, finite


def _time_steps(interleaved, job: JobSpec, framework: str) -> None:
    """Time ``adapter.step``, interleaved with the other framework's step (conftest), then check
    that the model is still finite after all those steps."""
    split = fold_data(job)
    step, finite = _stepper(job, framework, split)
    other, _ = _stepper(job, next(f for f in FRAMEWORKS if f != framework), split)
    interleaved(step, other)
    assert finite(), f"{framework} diverged while being timed"


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_training_run(benchmark, record, timer, framework, optimizer):
    epochs = RUN_EPOCHS if benchmark.enabled else 2
    job = job_config(f"optimizer={optimizer}", f"epochs={epochs}")
    split = fold_data(job)
    harness_seconds: list[float] = []
    before: list[float] = []  # the other framework's run before each round (the warm-up's first)

    other = next(f for f in FRAMEWORKS if f != framework)

    def setup():
        shuffle = data.generator(job.training.seed, 0, "shuffle")
        if benchmark.enabled:  # interleaved: a run of the other framework first, timed aside
            adapter = fresh_adapter(job, other)
            began = timer()
            train(adapter, split, job.training.epochs, job.training.batch_size, shuffle)
            before.append(timer() - began)
            shuffle = data.generator(job.training.seed, 0, "shuffle")
        return (fresh_adapter(job, framework), shuffle), {}

    def run(adapter, shuffle):
        result = train(adapter, split, job.training.epochs, job.training.batch_size, shuffle)
        harness_seconds.append(result.epochs[-1].train_seconds)
        return result

    steps = epochs * math.ceil(job.data.n_train / job.training.batch_size)
    record(f"run-{optimizer}", job, framework, epochs=epochs, steps=steps)
    result = benchmark.pedantic(run, setup=setup, rounds=RUN_ROUNDS, warmup_rounds=1)
    # The harness's own timer (training steps only: the README's timing rule) in the same rounds,
    # for the direction check against the sweep; pytest-benchmark times the whole train() call.
    benchmark.extra_info["harness_train_seconds"] = harness_seconds[-RUN_ROUNDS:]
    if benchmark.enabled:  # each round a block of one, beside the other's run just before it
        benchmark.extra_info["paired"] = paired_blocks(benchmark.stats.stats.data, before[1:])
    assert result.status == "ok"


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_training_step(interleaved, record, framework, optimizer):
    job = job_config(f"optimizer={optimizer}")
    record(f"step-{optimizer}", job, framework)
    _time_steps(interleaved, job, framework)


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize(
    ("optimizer", "width", "batch"),
    [pytest.param("sgd", w, b, id=f"w{w}-b{b}") for w in WIDTHS for b in BATCHES]
    + [pytest.param("adam", 1024, 1000, id="adam-w1024-b1000")],
)
def test_scaling(interleaved, record, framework, optimizer, width, batch):
    job = job_config(f"optimizer={optimizer}", f"model.hidden_width={width}", f"batch_size={batch}")
    prefix = "scale" if optimizer == "sgd" else f"scale-{optimizer}"
    record(f"{prefix}-w{width}-b{batch}", job, framework)
    _time_steps(interleaved, job, framework)


#: the digits CNN (bench/harness/models.py `cnn`), as Figure 6 and Table IV train it
CNN_LAYERS = "conv1-16-bn-relu-pool, conv16-32-bn-relu-pool, linear128-10"


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_cnn_training_step(interleaved, record, framework):
    """The report's future work: one SGD+momentum step of the digits CNN at batch 64, custom
    against its torch.nn twin (group ``cnn-step``)."""
    job = job_config("experiment=digits", "hydra.mode=RUN", "model=cnn", "batch_size=64")
    record("cnn-step", job, framework, layers=CNN_LAYERS)
    _time_steps(interleaved, job, framework)


def test_paired_blocks_split_rounds_at_each_block_of_the_other_and_take_medians():
    # Rounds 0-1 ran before any block of the other (dropped), then blocks of 3 rounds, the
    # first of each slowed by the switch (caches taken by the other): the medians ignore it.
    durations = [9.0, 9.0, 5.0, 1.0, 1.0, 7.0, 2.0, 2.0, 6.0, 3.0]
    before = [None, None, 10.0, None, None, 20.0, None, None, 30.0, None]
    assert paired_blocks(durations, before) == [[1.0, 10.0], [2.0, 20.0], [4.5, 30.0]]
    assert paired_blocks([1.0, 2.0], [None, None]) == []
