"""The torch.nn twin of a framework model: same architecture, same initial state.

This is the one place the harness translates between the two libraries: module by module,
loss by loss, optimizer by optimizer, with the same names and arguments on both sides.
"""

from __future__ import annotations

from typing import Any

import torch

import framework as fw


def torch_module(module: fw.Module) -> torch.nn.Module:
    """The torch.nn module equivalent to one framework module (parameters not copied)."""
    if isinstance(module, fw.Sequential):
        return torch.nn.Sequential(*(torch_module(m) for m in module))
    if isinstance(module, fw.Linear):
        weight = module.weight.data
        return torch.nn.Linear(
            module.in_features,
            module.out_features,
            bias=module.bias is not None,
            device=weight.device,
            dtype=weight.dtype,
        )
    simple = {fw.ReLU: torch.nn.ReLU, fw.Tanh: torch.nn.Tanh, fw.Sigmoid: torch.nn.Sigmoid}
    if type(module) in simple:
        return simple[type(module)]()
    if isinstance(module, fw.LeakyReLU):
        return torch.nn.LeakyReLU(module.negative_slope)
    if isinstance(module, fw.ELU):
        return torch.nn.ELU(module.alpha)
    raise TypeError(f"no torch.nn equivalent known for {type(module).__name__}")


def torch_twin(model: fw.Module) -> torch.nn.Module:
    """A torch.nn model with ``model``'s architecture, loaded with ``model``'s current state."""
    twin = torch_module(model)
    twin.load_state_dict(model.state_dict())
    return twin


def torch_loss(criterion: fw.Loss) -> torch.nn.Module:
    """torch.nn.MSELoss / BCELoss with the same reduction."""
    losses = {fw.MSELoss: torch.nn.MSELoss, fw.BCELoss: torch.nn.BCELoss}
    return losses[type(criterion)](reduction=criterion.reduction)


_OPTIMIZERS: dict[type, Any] = {
    fw.optim.SGD: torch.optim.SGD,
    fw.optim.Adam: torch.optim.Adam,
    fw.optim.RMSprop: torch.optim.RMSprop,
}


def torch_optimizer(optimizer: fw.optim.Optimizer, model: torch.nn.Module) -> torch.optim.Optimizer:
    """torch.optim's optimizer of the same class and hyperparameters over ``model``
    (torch's own implementation choice left at its default, as a user would have it)."""
    (group,) = optimizer.param_groups  # the harness builds one group
    options = {key: value for key, value in group.items() if key != "params"}
    return _OPTIMIZERS[type(optimizer)](model.parameters(), **options)
