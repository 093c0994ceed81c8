"""The framework pieces of a job, built from its spec: the model (its architecture is a registry
entry: `mlp`, `cnn`), the loss and the optimizer; and `check`, which builds them once before any
training so that a value only the piece itself refuses stops the job with a configuration error.
Their torch twins are built in ``reference``."""

from __future__ import annotations

import functools
import itertools
import math
import re
from collections.abc import Callable, Iterable
from typing import Any

import torch

import framework as fw

from .spec import Component, ConfigError, JobSpec

DTYPES = {"float32": torch.float32, "float64": torch.float64}

Activation = Callable[[], fw.Module]
"""A new activation layer, as configured."""


def build_activation(activation: Component) -> fw.Module:
    """The activation of a registry entry with its options (``fw.LeakyReLU(negative_slope)``)."""
    return activation.entry.load()(**activation.kwargs())


def _head(
    inputs: int, outputs: int, activation: Activation, dtype: torch.dtype, width: int, depth: int
) -> list[fw.Module]:
    """inputs → width (× depth) → outputs, the activation between layers; a sigmoid on a single
    output (a binary task), class logits otherwise."""
    widths = [inputs] + [width] * depth + [outputs]
    layers: list[fw.Module] = []
    for n_in, n_out in itertools.pairwise(widths):
        layers += [fw.Linear(n_in, n_out, dtype=dtype), activation()]
    layers.pop()  # no activation after the output layer
    return [*layers, fw.Sigmoid()] if outputs == 1 else layers


def mlp(
    shape: tuple[int, ...],
    outputs: int,
    activation: Activation,
    dtype: torch.dtype,
    hidden_width: int,
    hidden_layers: int,
) -> list[fw.Module]:
    """A multilayer perceptron on the flattened example: the report's 2 → 25 → 25 → 25 → 1."""
    flatten: list[fw.Module] = [fw.Flatten()] if len(shape) > 1 else []
    head = _head(math.prod(shape), outputs, activation, dtype, hidden_width, hidden_layers)
    return flatten + head


def cnn(
    shape: tuple[int, ...],
    outputs: int,
    activation: Activation,
    dtype: torch.dtype,
    hidden_width: int,
    hidden_layers: int,
    channels: Iterable[int],
) -> list[fw.Module]:
    """(Conv2d 3×3 - BatchNorm2d - activation - MaxPool2d 2) per entry of ``channels``, Flatten,
    then the MLP head: the digits CNN is (N, 1, 8, 8) → (N, 16, 4, 4) → (N, 32, 2, 2) → (N, 10)
    class logits."""
    n_in, height, width = shape
    layers: list[fw.Module] = []
    for n_out in channels:
        if min(height, width) < 2:
            raise ValueError(
                f"channels {list(channels)}: each block halves the {shape[1]}×{shape[2]} image; "
                "it is gone before the last one"
            )
        layers += [
            fw.Conv2d(n_in, n_out, 3, padding=1, dtype=dtype),
            fw.BatchNorm2d(n_out, dtype=dtype),
            activation(),
            fw.MaxPool2d(2),
        ]
        n_in, height, width = n_out, height // 2, width // 2
    head = _head(n_in * height * width, outputs, activation, dtype, hidden_width, hidden_layers)
    return [*layers, fw.Flatten(), *head]


def build_model(job: JobSpec, generator: torch.Generator) -> fw.Sequential:
    """The job's model, initialised from ``generator`` (on the CPU, so the draws are the same on
    any device), then moved to the job's device."""
    dataset = job.data.entry
    build = job.model.model.entry.load()
    activation = functools.partial(build_activation, job.model.activation)
    dtype = DTYPES[job.engine.dtype]
    layers = build(dataset.shape, dataset.outputs, activation, dtype, **job.model.model.kwargs())
    model = fw.Sequential(*layers, init=job.model.init, generator=generator)
    return model.to(device=job.engine.device)  # type: ignore[return-value]


def build_loss(loss: Component) -> fw.Loss:
    return loss.entry.load()(**loss.kwargs())


def build_optimizer(
    optimizer: Component, params: Iterable[fw.Parameter], lr: float | torch.Tensor | None = None
) -> fw.optim.Optimizer:
    """The configured optimizer over ``params`` (``lr`` replaced when given: a float, or a
    per-model tensor for a stack)."""
    options = optimizer.kwargs() | ({} if lr is None else {"lr": lr})
    return optimizer.entry.load()(params, **options)


def _refused(node: str, component: Component, error: Exception) -> ConfigError:
    """A piece's refusal as a configuration error naming the option it is about (the first
    option the message mentions)."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    mentioned = [
        (match.start(), key)
        for key in component.kwargs()
        if (match := re.search(rf"\b{re.escape(key)}\b", text))
    ]
    if mentioned:
        key = min(mentioned)[1]
        value = component[key]
        value = list(value) if isinstance(value, tuple) else value
        return ConfigError(f"{node}.{key}={value!r} is not allowed: {text}")
    return ConfigError(f"{node}={component.name} is not allowed: {text}")


def _built(node: str, component: Component, make: Callable[[], Any]) -> Any:
    try:
        return make()
    except (ValueError, TypeError) as error:
        raise _refused(node, component, error) from error


def check(job: JobSpec) -> None:
    """Build every piece of the job once (on the CPU, tiny data): a value that only the piece
    refuses (``optimizer.nesterov=true`` without momentum, a radius outside the square) raises a
    ConfigError naming the key, before anything trains. With the stacked engine, also stack two
    models."""
    data = job.data
    draw = data.dataset.entry.load()
    generator = torch.Generator().manual_seed(0)
    _built("data", data.dataset, lambda: draw(1, 1, generator, **data.dataset.kwargs()))
    _built("activation", job.model.activation, lambda: build_activation(job.model.activation))
    _built("loss", job.training.loss, lambda: build_loss(job.training.loss))
    job = job.replace_engine(device="cpu")
    model = _built("model", job.model.model, lambda: build_model(job, generator))
    _built("optimizer", job.optimizer, lambda: build_optimizer(job.optimizer, model.parameters()))
    if job.engine.name == "stacked":
        try:
            fw.stack([model, model])
        except (TypeError, ValueError) as error:
            raise ConfigError(
                f"engine='stacked' is not allowed: {error} (use engine=sequential)"
            ) from error
