"""Everything one fold trains, built from the job's config: the custom model, its loss and
optimizer, and (for ``framework=both``) the torch.nn twin loaded with the same initial state."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

import framework as fw

from . import config
from .reference import stacked_twin, torch_loss, torch_optimizer, torch_twin
from .training import Adapter, CustomAdapter, TorchAdapter

ACTIVATIONS = {"relu": fw.ReLU, "tanh": fw.Tanh}  # the ones without a parameter
LOSSES = {"mse": fw.MSELoss, "bce": fw.BCELoss, "ce": fw.CrossEntropyLoss}
#: (input shape of one example, outputs) of each dataset
SHAPES = {"disk": ((2,), 1), "digits": ((1, 8, 8), 10)}
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def activation(cfg: DictConfig) -> fw.Module:
    """The hidden layers' activation, with its parameter where it has one."""
    name = cfg.activation.name.value
    if name == "leaky_relu":
        return fw.LeakyReLU(cfg.activation.negative_slope)
    if name == "elu":
        return fw.ELU(cfg.activation.alpha)
    return ACTIVATIONS[name]()


def mlp(cfg: DictConfig) -> list[fw.Module]:
    """inputs → width (× hidden_layers) → outputs, the configured activation between layers;
    a sigmoid on the single output of a binary task, logits for a classification one."""
    shape, outputs = SHAPES[cfg.data.name.value]
    dtype = DTYPES[cfg.dtype]
    widths = [math.prod(shape)] + [cfg.model.hidden_width] * cfg.model.hidden_layers + [outputs]
    layers: list[fw.Module] = [fw.Flatten()] if len(shape) > 1 else []
    for n_in, n_out in itertools.pairwise(widths):
        layers += [fw.Linear(n_in, n_out, dtype=dtype), activation(cfg)]
    layers.pop()  # no activation after the output layer
    return [*layers, fw.Sigmoid()] if outputs == 1 else layers


def cnn(cfg: DictConfig) -> list[fw.Module]:
    """The digits CNN: (Conv2d 3×3 - BatchNorm2d - ReLU - MaxPool2d 2) × 2, Flatten, Linear:
    (N, 1, 8, 8) → (N, 16, 4, 4) → (N, 32, 2, 2) → (N, 10) class logits."""
    dtype = DTYPES[cfg.dtype]
    layers: list[fw.Module] = []
    for n_in, n_out in ((1, 16), (16, 32)):
        layers += [
            fw.Conv2d(n_in, n_out, 3, padding=1, dtype=dtype),
            fw.BatchNorm2d(n_out, dtype=dtype),
            fw.ReLU(),
            fw.MaxPool2d(2),
        ]
    return [*layers, fw.Flatten(), fw.Linear(32 * 2 * 2, 10, dtype=dtype)]


def build_model(cfg: DictConfig, generator: torch.Generator) -> fw.Sequential:
    """The configured model, initialised from ``generator`` (on the CPU, so the draws are the
    same on any device), then moved to the job's device."""
    layers = cnn(cfg) if cfg.model.name.value == "cnn" else mlp(cfg)
    model = fw.Sequential(*layers, init=cfg.init.name.value, generator=generator)
    return model.to(device=cfg.device)  # type: ignore[return-value]


def optimizer_options(cfg: DictConfig, lr: float | None = None) -> dict[str, Any]:
    """The optimizer's keyword arguments (``lr`` replaced when given)."""
    options = {k: v for k, v in OmegaConf.to_container(cfg.optimizer).items() if k != "name"}
    if "betas" in options:
        options["betas"] = tuple(options["betas"])
    return options if lr is None else {**options, "lr": lr}


def build_optimizer(cfg: DictConfig, model: fw.Module) -> fw.optim.Optimizer:
    return getattr(fw.optim, config.algorithm(cfg))(model.parameters(), **optimizer_options(cfg))


def stack_problem(cfg: DictConfig) -> str | None:
    """Why the configured model cannot be trained stacked (None if it can)."""
    on_cpu = cfg.copy()
    on_cpu.device = "cpu"
    model = build_model(on_cpu, torch.Generator().manual_seed(0))
    try:
        fw.stack([model, model])
    except (TypeError, ValueError) as error:
        return str(error)
    return None


def frameworks(cfg: DictConfig) -> list[str]:
    return [str(name.value) for name in cfg.framework.names]


def stacked_adapters(
    cfg: DictConfig,
    generators: Sequence[torch.Generator],
    lrs: Sequence[float],
    names: Sequence[str] | None = None,
) -> dict[str, Adapter]:
    """One adapter per configured framework for M models trained as one program: model m
    initialised from ``generators[m]`` and trained at ``lrs[m]``. The custom framework stacks
    them (`framework.stack`, a per-model learning-rate tensor); torch.nn's peer is the
    `reference.StackedTwin` (torch.func) of the same initial weights, which takes one learning
    rate: a job groups its models by learning rate for it."""
    names = names or frameworks(cfg)
    models = [build_model(cfg, generator) for generator in generators]
    criterion = LOSSES[cfg.loss.name.value]()
    built: dict[str, Adapter] = {}
    if "torch" in names:  # the twins copy the states before any training
        (lr,) = set(lrs)
        options = optimizer_options(cfg, lr)
        built["torch"] = stacked_twin(models, criterion, config.algorithm(cfg), options)
    if "custom" in names:
        stacked = fw.stack(models)
        device = stacked.parameters().__next__().device
        rates = torch.tensor(list(lrs), dtype=DTYPES[cfg.dtype], device=device)
        optimizer = getattr(fw.optim, config.algorithm(cfg))(
            stacked.parameters(), **optimizer_options(cfg, rates)
        )
        built["custom"] = CustomAdapter(stacked, fw.StackedLoss(criterion), optimizer)
    return {name: built[name] for name in names}


def adapters(cfg: DictConfig, generator: torch.Generator) -> dict[str, Adapter]:
    """Freshly initialised adapters, one per configured framework, all from one initial state."""
    model = build_model(cfg, generator)
    criterion = LOSSES[cfg.loss.name.value]()
    optimizer = build_optimizer(cfg, model)
    built: dict[str, Adapter] = {}
    if "torch" in frameworks(cfg):  # the twin copies the state before any training
        twin = torch_twin(model)
        built["torch"] = TorchAdapter(twin, torch_loss(criterion), torch_optimizer(optimizer, twin))
    if "custom" in frameworks(cfg):
        built["custom"] = CustomAdapter(model, criterion, optimizer)
    return {name: built[name] for name in frameworks(cfg)}
