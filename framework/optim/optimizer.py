"""The optimizer base class: parameter groups over one flat buffer each.

Each parameter group's tensors live in one contiguous ``data`` buffer and one ``grad`` buffer, so
an update rule runs a handful of whole-buffer operations per step instead of the same operations
once per tensor (torch.optim on CPU loops over tensors in Python): most of a small model's step.

The tensors are not replaced by views of the buffer: each ``Parameter``'s own ``data`` and
``grad`` tensor objects are re-pointed into it with ``Tensor.set_`` (as FSDP does for its flat
parameters). A reference a user took before (``layer.weight.data``, a ``model.state_dict()``
entry, ``layer.weight.grad``) is that same object, so it keeps following the model, as in torch.
Only a view or slice taken *before* the optimizer was built keeps the old storage.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from ..module import Parameter, check_set_to_none


class FlatGroup:
    """One parameter group's ``data`` and ``grad`` tensors, re-pointed into two flat buffers,
    and the group's optimizer ``state`` (flat tensors)."""

    def __init__(self, params: list[Parameter]) -> None:
        self.params = params
        self.shapes = [param.shape for param in params]
        self.state: dict[str, Any] = {}
        self._flatten()

    def _flatten(self) -> None:
        first = self.params[0].data
        for param in self.params:
            if param.grad.shape != param.data.shape:
                raise ValueError(
                    f"a parameter of shape {tuple(param.shape)} has a gradient of shape "
                    f"{tuple(param.grad.shape)}"
                )
            for tensor in (param.data, param.grad):
                if tensor.dtype != first.dtype or tensor.device != first.device:
                    raise ValueError(
                        "all parameters (and gradients) of a group must share dtype and device; "
                        f"got {first.dtype}/{first.device} and {tensor.dtype}/{tensor.device}"
                    )
        self.data = torch.cat([param.data.reshape(-1) for param in self.params])
        self.grad = torch.cat([param.grad.reshape(-1) for param in self.params])
        data, grad = self.data.untyped_storage(), self.grad.untyped_storage()
        offset = 0
        for param in self.params:
            shape = param.shape
            param.data.set_(data, offset, shape)
            param.grad.set_(grad, offset, shape)
            param._flat = self
            offset += param.numel()
        self.members = [(param.data, param.grad) for param in self.params]

    def in_sync(self) -> bool:
        """Whether every parameter's tensors are still the ones in this group's buffers."""
        for param, (data, grad) in zip(self.params, self.members, strict=True):
            if param._flat is not self or param.data is not data or param.grad is not grad:
                return False
        return True

    def sync(self) -> None:
        """Re-flatten when a parameter's tensor was replaced (``model.to(torch.float64)``,
        assignment) or re-pointed into another optimizer's buffer: training goes on with the
        parameters' current tensors, the state cast to their dtype and device, instead of
        updating a buffer nobody reads."""
        if self.in_sync():
            return
        for index, (param, shape) in enumerate(zip(self.params, self.shapes, strict=True)):
            if param.shape != shape:
                raise RuntimeError(
                    f"parameter {index} of the group changed shape from {tuple(shape)} to "
                    f"{tuple(param.shape)} after the optimizer was created; create a new optimizer"
                )
        self._flatten()
        self.state = {
            key: value.to(self.data) if isinstance(value, torch.Tensor) else value
            for key, value in self.state.items()
        }


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
    ``zero_grad()``, ``step()``.

    Args:
        params: an iterable of ``Parameter`` or of dicts ``{"params": [...], "lr": ...}``.
        defaults: the hyperparameters each group gets unless it sets its own.
    """

    def __init__(self, params: Iterable[Parameter] | Iterable[dict], defaults: dict) -> None:
        self.defaults = defaults
        self.param_groups: list[dict[str, Any]] = []
        self._flat: list[FlatGroup] = []
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: dict) -> None:
        """Add a group ``{"params": [...], **options}``; missing options take the defaults."""
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
        self._flat.append(FlatGroup(params))

    def _validate(self, group: dict[str, Any]) -> None:
        check_range("lr", group["lr"], 0.0)
        check_range("weight_decay", group["weight_decay"], 0.0)

    def zero_grad(self, set_to_none: bool = False) -> None:
        """Zero every gradient in place: one fill per group.

        ``set_to_none=True`` (torch's default) raises ValueError: here ``grad`` is allocated
        with the parameter and only ever updated in place, so it cannot be None.
        """
        check_set_to_none(set_to_none)
        for flat in self._flat:
            flat.sync()
            flat.grad.zero_()

    def step(self) -> None:
        """Apply one update to every parameter group."""
        for group, flat in zip(self.param_groups, self._flat, strict=True):
            flat.sync()
            self._update(group, flat.state, flat.data, flat.grad)

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
