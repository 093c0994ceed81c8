"""One training loop for both frameworks; a small adapter per framework does step and evaluate.

Timing rule (the same for both, or the comparison means nothing): the timed region is the
training steps only — no data generation, no batch gathering, no per-epoch evaluation — after
one untimed warm-up step on a throwaway model, with the thread count fixed by the caller.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Protocol

import torch

import framework as fw

from .data import Split
from .results import EpochRecord


class Adapter(Protocol):
    """What the loop needs from a framework."""

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """One mini-batch update: forward, loss, backward, optimizer step."""

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        """(mean loss, error rate) on a whole set, without training."""


def error_rate(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """Fraction of examples misclassified (an exact count / n, not a float32 mean): on the wrong
    side of 0.5 for a binary task, whose argmax logit is not the class for class indices."""
    if target.is_floating_point():
        wrong = (prediction > 0.5) != (target > 0.5)
    else:
        wrong = prediction.argmax(dim=1) != target
    return wrong.sum().item() / target.shape[0]


class CustomAdapter:
    """The from-scratch framework: explicit backward."""

    def __init__(self, model: fw.Module, criterion: fw.Loss, optimizer: fw.optim.Optimizer):
        self.model, self.criterion, self.optimizer = model, criterion, optimizer

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.criterion(self.model(x), y)
        self.optimizer.zero_grad()
        self.model.backward(self.criterion.backward())
        self.optimizer.step()

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        self.model.eval()  # BatchNorm's running statistics, no Dropout
        try:
            prediction = self.model(x)
        finally:
            self.model.train()
        if not torch.isfinite(prediction).all():
            return math.nan, math.nan
        return self.criterion(prediction, y).item(), error_rate(prediction, y)


class TorchAdapter:
    """The torch.nn reference: autograd and torch.optim, as a torch user writes it."""

    def __init__(
        self, model: torch.nn.Module, criterion: torch.nn.Module, optimizer: torch.optim.Optimizer
    ):
        self.model, self.criterion, self.optimizer = model, criterion, optimizer

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.optimizer.zero_grad()
        self.criterion(self.model(x), y).backward()
        self.optimizer.step()

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        self.model.eval()
        try:
            with torch.no_grad():
                prediction = self.model(x)
        finally:
            self.model.train()
        if not torch.isfinite(prediction).all():
            return math.nan, math.nan
        return self.criterion(prediction, y).item(), error_rate(prediction, y)


@dataclass
class RunResult:
    """One framework trained on one fold."""

    status: str  # "ok" or "diverged"
    epochs: list[EpochRecord]
    diverged_epoch: int | None = None


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _record(adapter: Adapter, split: Split, epoch: int, seconds: float) -> EpochRecord:
    train_loss, train_error = adapter.evaluate(split.x_train, split.y_train)
    test_loss, test_error = adapter.evaluate(split.x_test, split.y_test)
    val = adapter.evaluate(split.x_val, split.y_val) if len(split.x_val) else (None, None)
    return EpochRecord(epoch, train_loss, train_error, test_loss, test_error, seconds, *val)


def train(
    adapter: Adapter,
    split: Split,
    epochs: int,
    batch_size: int,
    shuffle: torch.Generator,
    warmup: Adapter | None = None,
) -> RunResult:
    """Mini-batch training over ``epochs``, the batch order drawn from ``shuffle``.

    ``warmup``, if given, takes one untimed step first (a throwaway adapter of the same shapes,
    so the measured trajectory is untouched). A loss that becomes NaN/inf stops the run with
    status ``"diverged"`` at that epoch.
    """
    x, y = split.x_train, split.y_train
    device = x.device
    records = [_record(adapter, split, 0, 0.0)]
    if warmup is not None:
        warmup.step(x[:batch_size], y[:batch_size])
        _synchronize(device)
    seconds = 0.0
    for epoch in range(1, epochs + 1):
        order = torch.randperm(x.shape[0], generator=shuffle).to(device)
        batches = [(x[index], y[index]) for index in order.split(batch_size)]
        start = time.perf_counter()
        try:
            for x_batch, y_batch in batches:
                adapter.step(x_batch, y_batch)
            _synchronize(device)
        except (RuntimeError, ValueError):
            # torch's BCELoss refuses NaN predictions mid-epoch: that is divergence, not a bug,
            # when the model's output has already blown up. Anything else is a real error.
            if math.isfinite(adapter.evaluate(x, y)[0]):
                raise
        seconds += time.perf_counter() - start
        record = _record(adapter, split, epoch, seconds)
        records.append(record)
        if not math.isfinite(record.train_loss):
            return RunResult("diverged", records, diverged_epoch=epoch)
    return RunResult("ok", records)
