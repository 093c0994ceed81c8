"""The two engines behind one interface, and the one path that trains a unit of a job.

A job trains models, one per (fold, learning rate), under the equivalence protocol. An engine
says how: which units the job trains and saves one after another (`Engine.units`), and which
models of a unit each framework trains as one program (`Engine.programs`). `run_unit` is the one
run path for both: per framework and program, one adapter from `adapter` (the one factory) and
one call of the training loop.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

import torch

import framework as fw

from . import data
from .models import DTYPES, build_loss, build_model, build_optimizer
from .reference import StackedTwin, torch_loss, torch_optimizer, torch_twin
from .results import FoldRun
from .spec import JobSpec
from .training import Adapter, CustomAdapter, TorchAdapter, train_models

Model = tuple[int, float]
"""One model of a job: (fold, learning rate)."""


class Engine(Protocol):
    """How a job's models are trained."""

    name: ClassVar[str]
    stacked: ClassVar[bool]  # whether a program's models train as one stacked model

    def units(self, job: JobSpec, todo: Sequence[Model]) -> list[list[Model]]:
        """The units the job trains and saves (result.json) one after another."""
        ...

    def programs(self, framework: str, unit: Sequence[Model]) -> list[list[Model]]:
        """The models of ``unit`` that ``framework`` trains as one program, program by program."""
        ...


def _by_fold(models: Sequence[Model]) -> list[list[Model]]:
    groups: dict[int, list[Model]] = {}
    for fold, lr in models:
        groups.setdefault(fold, []).append((fold, lr))
    return list(groups.values())


def _by_lr(models: Sequence[Model]) -> list[list[Model]]:
    groups: dict[float, list[Model]] = {}
    for fold, lr in models:
        groups.setdefault(lr, []).append((fold, lr))
    return list(groups.values())


@dataclass(frozen=True)
class Sequential:
    """One model after another, as the paper trained (Table III times one model alone): a unit is
    a fold (every learning rate of it), a program one model."""

    name: ClassVar[str] = "sequential"
    stacked: ClassVar[bool] = False

    def units(self, job: JobSpec, todo: Sequence[Model]) -> list[list[Model]]:
        return _by_fold(todo)

    def programs(self, framework: str, unit: Sequence[Model]) -> list[list[Model]]:
        return [[model] for model in unit]


#: model-steps per stacked program, by default: about ten seconds of training on one core
CHUNK_STEPS = 200_000


@dataclass(frozen=True)
class Stacked:
    """M models as one batched program: the custom framework stacks a unit's models
    (`framework.stack`, one learning rate per model); torch.nn's peer (torch.func) takes one
    learning rate per optimizer, so it trains one program per learning rate. A unit is ``chunk``
    models (by default as many as fit in `CHUNK_STEPS` model-steps, at most the model entry's
    ``stack_chunk``)."""

    name: ClassVar[str] = "stacked"
    stacked: ClassVar[bool] = True

    def units(self, job: JobSpec, todo: Sequence[Model]) -> list[list[Model]]:
        training, sizes = job.training, job.data
        steps = training.epochs * math.ceil((sizes.n_train - sizes.n_val) / training.batch_size)
        size = max(1, CHUNK_STEPS // steps)
        cap = job.model.model.entry.stack_chunk
        size = job.engine.chunk or (min(size, cap) if cap else size)
        return [list(todo[i : i + size]) for i in range(0, len(todo), size)]

    def programs(self, framework: str, unit: Sequence[Model]) -> list[list[Model]]:
        return [list(unit)] if framework == "custom" else _by_lr(unit)


ENGINES: dict[str, Engine] = {engine.name: engine for engine in (Sequential(), Stacked())}


def split(job: JobSpec, fold: int) -> data.Split:
    """The fold's data on the job's device and dtype."""
    source = data.stream_fold(job.training.vary, fold, "data", job.training.folds)
    split_ = data.fold_split(job.data, job.training.seed, source)
    return split_.to(torch.device(job.engine.device), DTYPES[job.engine.dtype])


def stream(job: JobSpec, fold: int, name: data.Stream) -> torch.Generator:
    """The fold's generator of one random stream (`data.stream_fold`: the fold's own draw, fold
    0's for a stream that does not vary, or its level in the crossed design)."""
    training = job.training
    draw = data.stream_fold(training.vary, fold, name, training.folds)
    return data.generator(training.seed, draw, name)


def adapter(
    job: JobSpec,
    framework: str,
    generators: Sequence[torch.Generator],
    lrs: Sequence[float],
    stacked: bool,
) -> Adapter:
    """The one adapter factory: the models initialised from ``generators`` (model m at
    ``lrs[m]``), trained by ``framework`` alone or as one stacked program. The custom framework
    builds them (and stacks them with one learning rate per model); torch's twins load the same
    initial states, and train with one torch.optim optimizer (torch.func's stack when stacked)."""
    models = [build_model(job, generator) for generator in generators]
    criterion = build_loss(job.training.loss)
    eval_values = job.model.model.entry.eval_values  # the family's evaluation slice size
    if framework == "custom":
        if not stacked:
            (model,), (lr,) = models, lrs
            optimizer = build_optimizer(job.optimizer, model.parameters(), lr)
            return CustomAdapter(model, criterion, optimizer, eval_values)
        model = fw.stack(models)
        rates = torch.tensor(
            list(lrs), dtype=DTYPES[job.engine.dtype], device=torch.device(job.engine.device)
        )
        optimizer = build_optimizer(job.optimizer, model.parameters(), rates)
        return CustomAdapter(model, fw.StackedLoss(criterion), optimizer, eval_values)
    twins = [torch_twin(model) for model in models]  # the same initial states
    (lr,) = set(lrs)  # torch.optim: one learning rate per optimizer
    make_optimizer = functools.partial(torch_optimizer, job.optimizer, lr=lr)
    if stacked:
        return StackedTwin(twins, torch_loss(criterion), make_optimizer, eval_values)
    (twin,) = twins
    return TorchAdapter(twin, torch_loss(criterion), make_optimizer(twin.parameters()), eval_values)


def run_unit(job: JobSpec, unit: Sequence[Model]) -> list[FoldRun]:
    """Train one unit of `Engine.units` with the job's engine: every framework, program by
    program, each model under the equivalence protocol (its fold's points, initial weights and
    batch order, whichever framework and program trains it). A program first takes one untimed
    step on a throwaway copy of its shapes (the timing rule's warm-up)."""
    engine = ENGINES[job.engine.name]
    training = job.training
    splits = {fold: split(job, fold) for fold in dict.fromkeys(fold for fold, _ in unit)}
    runs = []
    for framework in job.frameworks:
        for program in engine.programs(framework, unit):
            lrs = [lr for _, lr in program]
            inits = [stream(job, fold, "init") for fold, _ in program]
            trained = adapter(job, framework, inits, lrs, engine.stacked)
            throwaway = [torch.Generator().manual_seed(k) for k in range(len(program))]
            warmup = adapter(job, framework, throwaway, lrs, engine.stacked)
            outcomes = train_models(
                trained,
                [splits[fold] for fold, _ in program],
                training.epochs,
                training.batch_size,
                [stream(job, fold, "shuffle") for fold, _ in program],
                warmup,
            )
            runs += [
                FoldRun(framework, fold, lr, out.status, out.epochs, out.diverged_epoch)
                for (fold, lr), out in zip(program, outcomes, strict=True)
            ]
    return runs
