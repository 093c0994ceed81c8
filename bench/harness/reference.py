"""The torch.nn twin of a framework model: same architecture, same initial state.

This is the one place the harness translates between the two libraries: module by module,
loss by loss, optimizer by optimizer, with the same names and arguments on both sides. What a
config chooses (activations, losses, optimizers) is twinned through its registry entry; the
architecture's own layers (Linear, Conv2d, BatchNorm, ...) here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence

import torch

import framework as fw
from bench import registry

from . import training
from .metrics import errors
from .spec import Component


class SameMaskDropout(torch.nn.Dropout):
    """torch.nn.Dropout drawing its masks from a copy of the framework Dropout's generator.

    torch's dropout draws from the global generator; this twin swaps that generator's state for
    its own around torch's unchanged forward (``torch.random.fork_rng`` restores the global
    state after). The framework draws ``bernoulli_(1 - p)`` exactly as torch's CPU kernel does,
    so started from the same state the two produce the same masks, call after call, whichever
    model runs first (tests/test_framework_conv.py checks it against torch.nn.Dropout).
    """

    def __init__(self, p: float, inplace: bool, generator: torch.Generator) -> None:
        super().__init__(p, inplace)
        self.generator = torch.Generator(generator.device)
        self.generator.set_state(generator.get_state())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p in (0, 1):  # no draw, as in torch
            return super().forward(x)
        if x.device.type != "cpu":
            raise NotImplementedError("SameMaskDropout replays CPU generators only")
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self.generator.get_state())
            y = super().forward(x)
            self.generator.set_state(torch.get_rng_state())
        return y


def torch_module(module: fw.Module) -> torch.nn.Module:
    """The torch.nn module equivalent to one framework module (parameters not copied), in the
    same train/eval mode.

    A framework Dropout with a ``generator`` becomes a `SameMaskDropout` that replays the same
    masks; without one (both draw from torch's global generator) a plain torch.nn.Dropout, whose
    masks then depend on the order of the calls.
    """
    twin = _torch_module(module)
    twin.training = module.training
    return twin


def _registered(kind: str, piece: type) -> registry.Entry | None:
    """The registry entry whose framework piece is ``piece`` (None if there is none)."""
    for entry in registry.entries(kind).values():
        if entry.build is not None and entry.load() is piece:
            return entry
    return None


def _torch_module(module: fw.Module) -> torch.nn.Module:
    if isinstance(module, fw.Sequential):
        return torch.nn.Sequential(*(torch_module(m) for m in module))
    activation = _registered("activation", type(module))
    if activation is not None:  # every activation of the harness: torch's from the registry
        return activation.load_twin()(**module.hyperparameters())
    if isinstance(module, fw.Linear):
        weight = module.weight.data
        return torch.nn.Linear(
            module.in_features,
            module.out_features,
            bias=module.bias is not None,
            device=weight.device,
            dtype=weight.dtype,
        )
    if isinstance(module, fw.Sigmoid):  # the output layer of a binary task, not a choice
        return torch.nn.Sigmoid()
    if isinstance(module, fw.Conv2d):
        weight = module.weight.data
        return torch.nn.Conv2d(
            module.in_channels,
            module.out_channels,
            module.kernel_size,
            stride=module.stride,
            padding=module.padding,
            bias=module.bias is not None,
            device=weight.device,
            dtype=weight.dtype,
        )
    if isinstance(module, fw.MaxPool2d):
        return torch.nn.MaxPool2d(module.kernel_size, module.stride, padding=module.padding)
    if isinstance(module, fw.Flatten):
        return torch.nn.Flatten(module.start_dim, module.end_dim)
    if isinstance(module, (fw.BatchNorm1d, fw.BatchNorm2d)):
        # Where the layer's tensors live (it has none with affine=False and no running stats).
        state = module.weight if module.weight is not None else module.running_mean
        batchnorm = (
            torch.nn.BatchNorm1d if isinstance(module, fw.BatchNorm1d) else torch.nn.BatchNorm2d
        )
        return batchnorm(
            module.num_features,
            eps=module.eps,
            momentum=module.momentum,
            affine=module.affine,
            track_running_stats=module.track_running_stats,
            bias=module.bias is not None or not module.affine,
            device=None if state is None else state.device,
            dtype=None if state is None else state.dtype,
        )
    if isinstance(module, fw.Dropout):
        if module.generator is None:
            return torch.nn.Dropout(module.p, module.inplace)
        return SameMaskDropout(module.p, module.inplace, module.generator)
    raise TypeError(f"no torch.nn equivalent known for {type(module).__name__}")


def torch_twin(model: fw.Module) -> torch.nn.Module:
    """A torch.nn model with ``model``'s architecture, loaded with ``model``'s current state."""
    twin = torch_module(model)
    twin.load_state_dict(model.state_dict())
    return twin


def torch_loss(criterion: fw.Loss) -> torch.nn.Module:
    """torch.nn's criterion of the same registry entry (MSELoss, BCELoss, CrossEntropyLoss),
    with the same reduction."""
    entry = _registered("loss", type(criterion))
    if entry is None:
        raise TypeError(f"no torch.nn equivalent known for {type(criterion).__name__}")
    return entry.load_twin()(reduction=criterion.reduction)


def torch_optimizer(
    optimizer: Component, params: Iterable[torch.Tensor], lr: float | None = None
) -> torch.optim.Optimizer:
    """torch.optim's optimizer of the configured entry over ``params``, with the same
    hyperparameters (``lr`` replaced when given; torch's own implementation choice left at its
    default, as a user would have it)."""
    options = optimizer.kwargs() | ({} if lr is None else {"lr": lr})
    return optimizer.entry.load_twin()(params, **options)


class StackedTwin:
    """M torch.nn twins trained as one program, the strongest torch peer of a stacked framework
    model: ``torch.func.stack_module_state`` (parameters with a leading model dimension),
    ``functional_call`` vmapped over the models for the forward pass and the loss, autograd for
    the backward pass (of the sum of the M losses: each model gets its own loss's gradient),
    and torch.optim over the stacked parameters (its update is element-wise, so each slice is
    updated as its model alone would be). An adapter of the training loop (see
    ``bench.harness.training``): ``step`` and ``evaluate`` take (M, B, ...) batches.
    """

    stacked = True

    def __init__(
        self,
        twins: Sequence[torch.nn.Module],
        criterion: torch.nn.Module,
        optimizer: Callable[[Iterable[torch.Tensor]], torch.optim.Optimizer],
        eval_values: int | None = None,
    ) -> None:
        self.models = len(twins)
        self.eval_values = eval_values  # training.predict's slice size (None: its default)
        self.params, self.buffers = torch.func.stack_module_state(list(twins))
        base = copy.deepcopy(twins[0]).to("meta")  # the architecture only; weights come stacked
        self._base = base  # its train()/eval() mode is the stack's (BatchNorm's statistics)

        def predict(params, buffers, x):
            return torch.func.functional_call(base, (params, buffers), (x,))

        def loss(params, buffers, x, y):
            return criterion(predict(params, buffers, x), y)

        self._predict = torch.func.vmap(predict)
        self._loss = torch.func.vmap(loss)
        self._criterion = torch.func.vmap(criterion)
        self.optimizer = optimizer(self.params.values())

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.optimizer.zero_grad()
        self._loss(self.params, self.buffers, x, y).sum().backward()
        self.optimizer.step()

    def measure(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per model: ``(2, M)`` float64 mean losses and error rates (NaN for a model whose
        output is not finite), on the device: one vmapped forward, nothing read back."""
        self._base.eval()  # BatchNorm's running statistics, no Dropout
        try:
            with torch.no_grad():
                prediction = training.predict(
                    lambda part: self._predict(self.params, self.buffers, part),
                    x,
                    dim=1,
                    values=self.eval_values,
                )
        finally:
            self._base.train()
        with torch.no_grad():
            ok = torch.isfinite(prediction.flatten(1)).all(dim=1)
            # torch's BCELoss refuses NaN: a model whose output is not finite is measured on
            # 0.5s instead (and its numbers replaced by NaN below); the others' are their own.
            safe = torch.where(ok.view(-1, *[1] * (prediction.dim() - 1)), prediction, 0.5)
            losses = self._criterion(safe, y)
        measured = torch.stack([losses.double(), errors(prediction, y).double()])
        return torch.where(ok, measured, float("nan"))

    def check(self) -> None:
        """Nothing: torch's losses check their input themselves."""

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[list[float], list[float]]:
        losses, errs = self.measure(x, y).tolist()
        return losses, errs
