"""One training loop for both frameworks; a small adapter per framework does step and evaluate.

Timing rule (the same for both, or the comparison means nothing): the timed region is the
training steps only — no data generation, no batch gathering, no per-epoch evaluation — after
one untimed warm-up step on a throwaway model, with the thread count fixed by the caller.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

import framework as fw

from .data import Split
from .metrics import errors
from .results import EpochRecord


class Adapter(Protocol):
    """What the loop needs from a framework: ``models`` trained side by side (1 for an ordinary
    model; M for a stacked program, which takes (M, B, ...) batches)."""

    models: int
    stacked: bool

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """One mini-batch update: forward, loss, backward, optimizer step."""

    def measure(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per model, on a whole set, without training: ``(2, M)`` float64 on the device, the
        mean losses and the error rates (NaN for a model whose output is not finite). Reads
        nothing back to the host, so an epoch's sets are measured before one read."""

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[list[float], list[float]]:
        """`measure`, read back: per model, (mean loss, error rate)."""


EVAL_VALUES = 1 << 14
"""Input values per evaluation forward, by default (a model family's registry entry sets its
own, `bench.registry.Model.eval_values`, which the engines give the adapters): a set is
predicted in slices of its examples of about this size, so each slice's activations stay in the
CPU's cache (the digits CNN's 1,437 training images: 19 ms in one forward, 14 ms in slices of
256, measured on 2 cores). A prediction is per example, so the slices give the whole set's
predictions (the CNN's bit for bit; an MLP's to float32 rounding: BLAS picks its product
kernel by shape, and a slice's rows may round the last bit differently), and the loss is
computed once on them."""


def predict(
    forward: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    dim: int = 0,
    values: int | None = None,
) -> torch.Tensor:
    """``forward(x)`` computed on slices of x's examples (dimension ``dim``: 1 for a stack's
    (M, N, ...) input) of about ``values`` input values each (default `EVAL_VALUES`),
    concatenated."""
    rows = max(1, (values or EVAL_VALUES) * x.shape[dim] // max(1, x.numel()))
    if x.shape[dim] <= rows:
        return forward(x)
    return torch.cat([forward(part) for part in torch.split(x, rows, dim=dim)], dim=dim)


def _per_model(losses: torch.Tensor, errs: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    """(2, M) float64: the losses and error rates, NaN where ``ok`` is False."""
    measured = torch.stack([losses.double(), errs.double()])
    return torch.where(ok, measured, math.nan)


def _read(measured: torch.Tensor) -> tuple[list[float], list[float]]:
    losses, errs = measured.tolist()
    return losses, errs


class CustomAdapter:
    """The from-scratch framework, one model or a stack of M (`framework.stack`): explicit
    backward. The loss's value checks (BCE's [0, 1] range) run at evaluation, not in the step."""

    def __init__(
        self,
        model: fw.Module,
        criterion: fw.Module,
        optimizer: fw.optim.Optimizer,
        eval_values: int | None = None,
    ):
        self.model, self.criterion, self.optimizer = model, criterion, optimizer
        self.eval_values = eval_values  # `predict`'s slice size (None: EVAL_VALUES)
        self.stacked = isinstance(criterion, fw.StackedLoss)
        self.models = model.models if self.stacked else 1
        self._unchecked: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.criterion(self.model(x), y)
        self.optimizer.zero_grad()
        # no dL/dx of the data, as torch computes none for an input that needs no gradient
        self.model.backward(self.criterion.backward(), input_grad=False)
        self.optimizer.step()

    def measure(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.model.eval()  # BatchNorm's running statistics, no Dropout
        try:
            # a stack: batched forwards for its M models at once
            prediction = predict(self.model, x, 1 if self.stacked else 0, self.eval_values)
        finally:
            self.model.train()
        if self.stacked:
            losses = self.criterion(prediction, y)
        else:
            losses = self.criterion(prediction, y).reshape(1)
            prediction, y = prediction.unsqueeze(0), y.unsqueeze(0)
        ok = torch.isfinite(prediction.flatten(1)).all(dim=1)
        self._unchecked.append((prediction, y, ok))
        return _per_model(losses, errors(prediction, y), ok)

    def check(self) -> None:
        """The loss's value checks (BCE's [0, 1] range) on what `measure` predicted since the
        last check, once its numbers are read (these checks read values back): out-of-range
        input is a user error, raised."""
        unchecked, self._unchecked = self._unchecked, []
        criterion = self.criterion.criterion if self.stacked else self.criterion
        if hasattr(criterion, "validate"):
            for prediction, y, ok in unchecked:
                if bool(ok.all()):
                    criterion.validate(prediction, y)

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[list[float], list[float]]:
        measured = _read(self.measure(x, y))
        self.check()
        return measured


class TorchAdapter:
    """The torch.nn reference: autograd and torch.optim, as a torch user writes it."""

    models, stacked = 1, False

    def __init__(
        self,
        model: torch.nn.Module,
        criterion: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        eval_values: int | None = None,
    ):
        self.model, self.criterion, self.optimizer = model, criterion, optimizer
        self.eval_values = eval_values  # `predict`'s slice size (None: EVAL_VALUES)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.optimizer.zero_grad()
        self.criterion(self.model(x), y).backward()
        self.optimizer.step()

    def measure(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        try:
            with torch.no_grad():
                prediction = predict(self.model, x, 0, self.eval_values)
                ok = torch.isfinite(prediction).all().reshape(1)
                # torch's BCELoss refuses NaN: this reads ok back (one model, not a stack)
                loss = self.criterion(prediction, y) if bool(ok) else torch.tensor(math.nan)
        finally:
            self.model.train()
        return _per_model(loss.reshape(1), errors(prediction[None], y[None]), ok)

    def check(self) -> None:
        """Nothing: torch's losses check their input themselves."""

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[list[float], list[float]]:
        return _read(self.measure(x, y))


@dataclass
class RunResult:
    """One model's trajectory."""

    status: str  # "ok" or "diverged"
    epochs: list[EpochRecord]
    diverged_epoch: int | None = None


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Stacked:
    """The M models' sets, each tensor with a leading model dimension."""

    x_train: torch.Tensor  # (M, n_train, ...)
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor

    @classmethod
    def of(cls, splits: Sequence[Split]) -> Stacked:
        fields = Split.__dataclass_fields__
        return cls(*(torch.stack([getattr(s, name) for s in splits]) for name in fields))

    def sets(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        sets = [(self.x_train, self.y_train), (self.x_test, self.y_test)]
        return [*sets, (self.x_val, self.y_val)] if self.x_val.shape[1] else sets


def _records(adapter: Adapter, data: Stacked, epoch: int, seconds: float) -> list[EpochRecord]:
    """Every model's measures after ``epoch``; ``seconds`` is each model's share of the time.
    Each set is measured on the device (a stack: one batched forward per set), and the epoch's
    numbers are read back once, together."""
    sets = [
        adapter.measure(x, y) if adapter.stacked else adapter.measure(x[0], y[0])
        for x, y in data.sets()
    ]
    measured = [(losses, errs) for losses, errs in torch.stack(sets).tolist()]
    adapter.check()
    val = measured[2] if len(measured) == 3 else ([None] * adapter.models,) * 2
    return [
        EpochRecord(
            epoch,
            measured[0][0][m],
            measured[0][1][m],
            measured[1][0][m],
            measured[1][1][m],
            seconds,
            val[0][m],
            val[1][m],
        )
        for m in range(adapter.models)
    ]


def train_models(
    adapter: Adapter,
    splits: Sequence[Split],
    epochs: int,
    batch_size: int,
    shuffles: Sequence[torch.Generator],
    warmup: Adapter | None = None,
) -> list[RunResult]:
    """The training loop: mini-batch training over ``epochs`` of the adapter's models, model m
    on ``splits[m]`` in the batch order drawn from ``shuffles[m]``.

    ``warmup``, if given, takes one untimed step first (a throwaway adapter of the same shapes,
    so the measured trajectories are untouched). A stacked program's time is shared equally by
    its M models. A model whose loss becomes NaN/inf is recorded ``diverged`` at that epoch and
    no longer measured (in a stack it keeps running with the others; its slice cannot touch
    theirs).
    """
    data = Stacked.of(splits)
    x, y = data.x_train, data.y_train  # (M, n, ...)
    models, n = x.shape[0], x.shape[1]
    device = x.device
    rows = torch.arange(models, device=device).unsqueeze(1)  # (M, 1)

    def batch(index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xb, yb = x[rows, index], y[rows, index]  # (M, B, ...)
        return (xb, yb) if adapter.stacked else (xb[0], yb[0])

    results = [RunResult("ok", [record]) for record in _records(adapter, data, 0, 0.0)]
    if warmup is not None:
        warmup.step(*batch(torch.arange(batch_size, device=device).expand(models, -1)))
        _synchronize(device)
    running = [True] * models
    seconds = 0.0
    for epoch in range(1, epochs + 1):
        order = torch.stack([torch.randperm(n, generator=g) for g in shuffles]).to(device)
        batches = [batch(index) for index in order.split(batch_size, dim=1)]
        start = time.perf_counter()
        try:
            for x_batch, y_batch in batches:
                adapter.step(x_batch, y_batch)
            _synchronize(device)
        except (RuntimeError, ValueError):
            # torch's BCELoss refuses NaN predictions mid-epoch: that is divergence, not a bug,
            # when every model's output has already blown up. Anything else is a real error.
            if any(math.isfinite(v) for v in adapter.evaluate(*_whole(adapter, x, y))[0]):
                raise
        seconds += time.perf_counter() - start
        for m, record in enumerate(_records(adapter, data, epoch, seconds / models)):
            if not running[m]:
                continue
            results[m].epochs.append(record)
            if not math.isfinite(record.train_loss):
                running[m] = False
                results[m] = RunResult("diverged", results[m].epochs, diverged_epoch=epoch)
        if not any(running):
            break
    return results


def _whole(adapter: Adapter, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return (x, y) if adapter.stacked else (x[0], y[0])


def train(
    adapter: Adapter,
    split: Split,
    epochs: int,
    batch_size: int,
    shuffle: torch.Generator,
    warmup: Adapter | None = None,
) -> RunResult:
    """`train_models` for one model."""
    (result,) = train_models(adapter, [split], epochs, batch_size, [shuffle], warmup)
    return result
