"""The optimizer base class: parameter groups over one flat buffer each.

Each parameter group's tensors are copied into one contiguous buffer, and every ``Parameter``'s
``data`` and ``grad`` become views of it. An update rule then runs a handful of whole-buffer
operations per step instead of the same operations once per tensor (torch.optim on CPU loops
over tensors in Python), which is most of the cost of a small model's step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from ..module import Parameter


class FlatGroup:
    """One parameter group's flat ``data`` and ``grad`` buffers and the views handed out."""

    def __init__(self, params: list[Parameter]) -> None:
        first = params[0].data
        for param in params:
            if param.data.dtype != first.dtype or param.data.device != first.device:
                raise ValueError(
                    "all parameters of a group must share dtype and device; got "
                    f"{first.dtype}/{first.device} and {param.data.dtype}/{param.data.device}"
                )
        self.params = params
        self.data = torch.cat([p.data.reshape(-1) for p in params])
        self.grad = torch.cat([p.grad.reshape(-1) for p in params])
        offset = 0
        for param in params:
            n = param.data.numel()
            param.data = self.data[offset : offset + n].view_as(param.data)
            param.grad = self.grad[offset : offset + n].view_as(param.grad)
            offset += n
        self.views = [(p, p.data, p.grad) for p in params]

    def check_views(self) -> None:
        # A parameter whose tensor was replaced (model.to(), a second optimizer) would no longer
        # be updated by this buffer: fail loudly instead of training nothing.
        for param, data, grad in self.views:
            if param.data is not data or param.grad is not grad:
                raise RuntimeError(
                    "a parameter's tensor was replaced after the optimizer was created "
                    "(by model.to(), .double(), another optimizer, or assignment); "
                    "create the optimizer after moving the model"
                )


def check_range(
    name: str, value: Any, low: float, high: float = math.inf, *, open_high: bool = False
) -> None:
    """Raise ValueError naming ``name`` unless ``value`` is a finite number in [low, high]
    ([low, high) if open_high)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"Invalid {name}: {value!r} (must be finite)")
    above = value >= high if open_high else value > high
    if value < low or above:
        bound = f"[{low}, {high})" if open_high else f"[{low}, {high}]"
        raise ValueError(f"Invalid {name}: {value!r} (must be in {bound})")


class Optimizer:
    """Base class, torch.optim-like: ``param_groups`` (dicts with hyperparameters),
    ``zero_grad()``, ``step()``, per-group ``state``.

    Args:
        params: an iterable of ``Parameter`` or of dicts ``{"params": [...], "lr": ...}``.
        defaults: the hyperparameters each group gets unless it sets its own.
    """

    def __init__(self, params: Iterable[Parameter] | Iterable[dict], defaults: dict) -> None:
        self.defaults = defaults
        self.param_groups: list[dict[str, Any]] = []
        self.state: list[dict[str, Any]] = []
        self._flat: list[FlatGroup] = []
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: dict) -> None:
        params = group["params"]
        params = [params] if isinstance(params, Parameter) else list(params)
        for param in params:
            if not isinstance(param, Parameter):
                raise TypeError(
                    f"optimizer can only optimize framework Parameters, got {type(param).__name__}"
                )
        if not params:
            raise ValueError("optimizer got an empty parameter group")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params) or len({id(p) for p in params}) != len(params):
            raise ValueError("some parameters appear in more than one parameter group")
        unknown = set(group) - set(self.defaults) - {"params"}
        if unknown:
            raise TypeError(f"unknown optimizer option(s): {sorted(unknown)}")
        full = {**self.defaults, **group, "params": params}
        self._validate(full)
        self.param_groups.append(full)
        self.state.append({})
        self._flat.append(FlatGroup(params))

    def _validate(self, group: dict[str, Any]) -> None:
        check_range("lr", group["lr"], 0.0)
        check_range("weight_decay", group.get("weight_decay", 0.0), 0.0)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero every gradient: one fill per group. (Gradients are views of the flat buffer, so
        they are always zeroed in place; ``set_to_none`` is accepted for torch compatibility.)"""
        for flat in self._flat:
            flat.grad.zero_()

    def step(self) -> None:
        """Apply one update to every parameter group."""
        for group, state, flat in zip(self.param_groups, self.state, self._flat, strict=True):
            flat.check_views()
            self._update(group, state, flat.data, flat.grad)

    def _update(
        self, group: dict[str, Any], state: dict[str, Any], param: torch.Tensor, grad: torch.Tensor
    ) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for index, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {index}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join([*lines, ")"])
