"""The optimizer base class: parameter groups over one flat buffer each, with torch.optim's
semantics.

Each parameter group's tensors live in one contiguous ``data`` buffer and one ``grad`` buffer, so
an update rule runs a handful of whole-buffer operations per step instead of the same operations
once per tensor (torch.optim on CPU loops over tensors in Python): most of a small model's step.

The tensors are not replaced by views of the buffer: each ``Parameter``'s own ``data`` and
``grad`` tensor objects are re-pointed into it with ``Tensor.set_`` (as FSDP does for its flat
parameters). A reference a user took before (``layer.weight.data``, a ``model.state_dict()``
entry, ``layer.weight.grad``) is that same object, so it keeps following the model, as in torch.
Only a view or slice taken *before* the optimizer was built keeps the old storage.

Per-model hyperparameters: for the parameters of M stacked models (`framework.stack`, whose
dimension 0 indexes the model) any hyperparameter may be a tensor of shape ``(M,)`` instead of a
float, so one stacked program trains, say, a grid of M learning rates. The group's flat buffer is
laid out parameter after parameter, each parameter's M slices one after another, so the update
multiplies by a per-element vector (the M values, each repeated over its model's elements: built
once and cached until the tensor is replaced or changed in place), one fused kernel like the
float's. Tensor values are validated when the optimizer (or a group, or a state dict) is given
them: a step reads nothing back to the host (so a tensor later written into ``param_groups``,
or changed in place as a schedule would, has its shape checked but its values used as they
are).

A 0-dim tensor (torch's ``lr=torch.tensor(0.01)``) is one value for the whole group, like a float,
over any parameters (stacked or not). It stays that tensor in ``param_groups``, as in torch, so a
change made in place reaches the next step; the update uses it as a broadcast scalar (its value is
never read back in a step: the per-element path of the per-model tensors, with one element), and
it is validated like a float when given.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import torch

from ..module import Parameter, check_set_to_none


class FlatGroup:
    """One parameter group's ``data`` and ``grad`` tensors, re-pointed into two flat buffers,
    and the group's optimizer ``state`` (flat tensors under torch.optim's key names, ``step`` an
    int, scratch buffers under keys starting with ``_``)."""

    def __init__(self, params: list[Parameter]) -> None:
        self.params = params
        self.shapes = [param.shape for param in params]
        self.state: dict[str, Any] = {}
        # Per-element vectors of tensor hyperparameters: {name: (source, its version, vector)}.
        self._vectors: dict[str, tuple[torch.Tensor, int, torch.Tensor]] = {}
        # M when every parameter is stacked with the same M models: the shape a tensor
        # hyperparameter must have.
        stacked = {param.shape[0] for param in params if param.stacked}
        self.models = stacked.pop() if len(stacked) == 1 and all(p.stacked for p in params) else 0
        self._flatten()

    def check_tensors(self, group: Mapping[str, Any], keys: Iterable[str]) -> None:
        """Refuse a tensor hyperparameter (under one of ``keys``) of ``group`` whose shape is
        neither ``()`` nor ``(M,)``: one written into ``param_groups`` after construction would
        otherwise spread the wrong values over the models without a word. Shapes and dtypes only:
        nothing is read back."""
        for key in keys:  # every step: a few keys, about a microsecond
            value = group[key]
            if isinstance(value, torch.Tensor):
                self._check_tensor(key, value)
            elif isinstance(value, tuple):  # Adam's betas: a pair
                for item in value:
                    if isinstance(item, torch.Tensor):
                        self._check_tensor(key, item)

    def _check_tensor(self, key: str, value: torch.Tensor) -> None:
        if value.dim() != 1 or value.shape[0] != self.models or not value.is_floating_point():
            check_per_model(key, value, self.params)

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
        parameters' current tensors, the state cast to their dtype and device (as
        ``load_state_dict`` casts it), instead of updating a buffer nobody reads."""
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

    def vector(
        self,
        value: float | torch.Tensor,
        name: str = "",
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> float | torch.Tensor:
        """A float as it is (``transform``-ed, e.g. ``1 − β``); a per-model tensor ``(M,)``
        (every parameter stacked, M models) as a vector over the flat buffer, each model's value
        repeated over its elements (then ``transform``-ed); a 0-dim tensor as a 0-dim tensor of
        the buffer's dtype and device (then ``transform``-ed), which broadcasts over it. Tensors
        are cached under ``name``: rebuilt only when the tensor is replaced or changed in place
        (its version counter moves), or the buffer's dtype or device changed."""
        if not isinstance(value, torch.Tensor):
            return value if transform is None else transform(value)
        cached = self._vectors.get(name)
        if (
            cached is not None
            and cached[0] is value
            and cached[1] == value._version
            and cached[2].dtype == self.data.dtype
            and cached[2].device == self.data.device
        ):
            return cached[2]
        per_model = value.detach().to(self.data)  # (M,), or () for the whole group
        if per_model.dim() == 0:
            vector = per_model
        else:
            vector = torch.cat(
                [
                    per_model.repeat_interleave(param.numel() // param.shape[0])
                    for param in self.params
                ]
            )
        if transform is not None:
            vector = transform(vector)
        self._vectors[name] = (value, value._version, vector)
        return vector

    def param_states(self) -> list[dict[str, Any]]:
        """The state of each parameter as torch.optim holds it: views of the flat state, shaped
        like the parameter (they follow the optimizer, like torch's), and ``step`` as a tensor."""
        states: list[dict[str, Any]] = [{} for _ in self.params]
        offset = 0
        for state, shape in zip(states, self.shapes, strict=True):
            n = shape.numel()
            for key, value in self.state.items():
                if key == "step":
                    state[key] = torch.tensor(float(value), dtype=step_dtype())
                elif not key.startswith("_"):
                    state[key] = value[offset : offset + n].view(shape)
            offset += n
        return states


def step_dtype() -> torch.dtype:
    """The dtype torch.optim stores ``step`` in (float64 only when that is the default dtype)."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def check_tensor_shape(name: str, value: torch.Tensor) -> None:
    """Raise ValueError naming ``name`` unless the tensor ``value`` holds one floating-point
    value for the whole group, shape ``()``, or one per model, shape ``(M,)``."""
    if not value.is_floating_point() or value.dim() > 1 or value.numel() == 0:
        raise ValueError(
            f"Invalid {name}: a tensor {name} must hold one floating-point value for the group, "
            f"shape (), or one floating-point value per model, shape (M,); got dtype "
            f"{value.dtype} and shape {tuple(value.shape)}"
        )


def check_per_model(name: str, value: torch.Tensor, params: list[Parameter]) -> None:
    """Raise ValueError naming ``name`` unless the tensor ``value`` is one floating-point value
    (shape ``()``, any parameters) or has the shape ``(M,)`` of one floating-point value per
    model and every parameter of ``params`` is stacked with M models (shapes and dtypes only:
    nothing is read back)."""
    check_tensor_shape(name, value)
    if value.dim() == 0:
        return
    models = value.shape[0]
    for index, param in enumerate(params):
        if not param.stacked or param.shape[0] != models:
            what = (
                f"stacked with {param.shape[0]} models"
                if param.stacked
                else f"not stacked (shape {tuple(param.shape)})"
            )
            raise ValueError(
                f"{name} is a tensor of {models} per-model values: every parameter of "
                f"its group must be the parameter of {models} stacked models "
                f"(framework.stack); parameter {index} is {what}"
            )


def check_range(
    name: str, value: Any, low: float, high: float = math.inf, *, open_high: bool = False
) -> None:
    """Raise ValueError naming ``name`` unless ``value`` is a finite number in [low, high]
    ([low, high) if open_high), or a floating-point tensor of shape ``()`` or ``(M,)`` (per-model
    values) of such numbers (read back here, once: a meta tensor, which has no values, passes)."""
    bound = f"[{low}, {high})" if open_high else f"[{low}, {high}]"
    if isinstance(value, torch.Tensor):
        check_tensor_shape(name, value)
        if value.device.type == "meta":
            return
        per_model = value.dim() == 1
        for index, exact in enumerate(value.reshape(-1).tolist()):
            number = float(f"{exact:.8g}")  # shown: float32's 0.1 as 0.1
            where = f" for model {index}" if per_model else ""
            if not math.isfinite(exact):
                raise ValueError(f"Invalid {name}: {number!r}{where} (must be finite)")
            if exact < low or (exact >= high if open_high else exact > high):
                raise ValueError(f"Invalid {name}: {number!r}{where} (must be in {bound})")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"Invalid {name}: {value!r} (must be finite)")
    above = value >= high if open_high else value > high
    if value < low or above:
        raise ValueError(f"Invalid {name}: {value!r} (must be in {bound})")


def values(value: float | torch.Tensor) -> list[float]:
    """A hyperparameter's value(s) for checks at construction: a float, or a tensor (0-dim or
    per-model) read back (none for a meta tensor)."""
    if not isinstance(value, torch.Tensor):
        return [value]
    return [] if value.device.type == "meta" else value.reshape(-1).tolist()


def is_zero(value: float | torch.Tensor) -> bool:
    """Whether a hyperparameter is the float 0 (a term the update can skip); a tensor never is
    (it is not read back in a step)."""
    return not isinstance(value, torch.Tensor) and value == 0


def root_of_second_moment(
    moment: torch.Tensor, eps: float | torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """√v of a second-moment estimate v ≥ 0 (into ``out`` if given).

    With ε > 0, √v is taken of max(v, smallest normal number): on the CPU the square root of 0
    or of a subnormal is about 30 times slower than of any other number, and zeros are common
    (every weight of a dead unit). The result changes only where v is below 1.2e-38 (float32),
    by less than 1.1e-19 in √v, which the added ε ≥ 1e-8-ish makes invisible; with ε = 0 the
    exact √v is kept (there it decides between a finite step and torch's inf or NaN)."""
    if not isinstance(eps, torch.Tensor) and eps == 0:
        return torch.sqrt(moment, out=out) if out is not None else moment.sqrt()
    tiny = torch.finfo(moment.dtype).tiny
    clamped = torch.clamp_min(moment, tiny, out=out) if out is not None else moment.clamp_min(tiny)
    return clamped.sqrt_()


def add_scaled(
    tensor: torch.Tensor, factor: float | torch.Tensor, other: torch.Tensor
) -> torch.Tensor:
    """``tensor + factor · other`` (new tensor), ``factor`` a float, a 0-dim tensor or a
    per-element vector."""
    if isinstance(factor, torch.Tensor):
        return tensor.addcmul(other, factor)
    return tensor.add(other, alpha=factor)


def add_scaled_(
    tensor: torch.Tensor, factor: float | torch.Tensor, other: torch.Tensor, sign: float = 1.0
) -> torch.Tensor:
    """``tensor += sign · factor · other`` in place, ``factor`` a float, a 0-dim tensor or a
    per-element vector (one fused kernel either way)."""
    if isinstance(factor, torch.Tensor):
        return tensor.addcmul_(other, factor, value=sign)
    return tensor.add_(other, alpha=sign * factor)


class Optimizer:
    """Base class with torch.optim's interface: ``param_groups``, ``zero_grad()``, ``step()``,
    ``state``, ``state_dict()``, ``load_state_dict()``, ``add_param_group()``.

    ``state_dict()`` has torch.optim's exact layout (the same group keys, the same per-parameter
    state keys and shapes, ``step`` stored as torch stores it), so the state of this optimizer
    loads into its torch.optim twin and the other way round.

    Args:
        params: an iterable of ``Parameter`` or of dicts ``{"params": [...], "lr": ...}``.
        defaults: the hyperparameters each group gets unless it sets its own.
        **torch_only: values of the class's `torch_only` switches given by keyword (code written
            for torch.optim passes ``foreach=False``, say); any other keyword is a TypeError, as
            in torch, and a switch that is on a ValueError (at the first group).
    """

    #: torch.optim's switches for implementation choices and variants this framework does not
    #: have, at torch's defaults. They are in every group (so state dicts match torch's key for
    #: key) and accepted only when off (False or None).
    torch_only: ClassVar[dict[str, Any]] = {}
    #: the keys of `torch_only` a class does implement (accepted on too): Adam's
    #: decoupled_weight_decay
    implemented: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self, params: Iterable[Parameter] | Iterable[dict], defaults: dict, **torch_only: Any
    ) -> None:
        for key in torch_only:
            if key not in self.torch_only:
                raise TypeError(
                    f"{type(self).__name__}.__init__() got an unexpected keyword argument {key!r}"
                )
        self.defaults = {**defaults, **self.torch_only, **torch_only}
        self._hyperparameters = tuple(defaults)  # the keys that may hold per-model tensors
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
        # The group's own keys first, then the defaults it lacks: torch's order of keys.
        full = {**group, "params": params}
        for key, default in self.defaults.items():
            full.setdefault(key, default)
        self._validate(full)
        self.param_groups.append(full)
        self._flat.append(FlatGroup(params))

    def _validate(self, group: dict[str, Any]) -> None:
        for key, default in self.torch_only.items():
            if key not in self.implemented and group[key] is not None and group[key] is not False:
                raise ValueError(
                    f"{type(self).__name__} does not implement torch.optim's {key}="
                    f"{group[key]!r}; only {default!r} (off) is supported"
                )
        check_range("lr", group["lr"], 0.0)
        check_range("weight_decay", group["weight_decay"], 0.0)
        self._check_per_model(group)

    def _check_per_model(self, group: dict[str, Any]) -> None:
        """A tensor hyperparameter ``(M,)`` needs every parameter of its group stacked, with M
        models; a 0-dim one fits any group (the values are checked by `check_range`)."""
        for key, value in group.items():
            items = value if isinstance(value, tuple) else (value,)  # Adam's betas: a pair
            for tensor in (item for item in items if isinstance(item, torch.Tensor)):
                check_per_model(key, tensor, group["params"])

    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        """The per-parameter state keys torch.optim holds for ``group`` once it has stepped."""
        raise NotImplementedError

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
            flat.check_tensors(group, self._hyperparameters)  # before anything moves
            self._update(group, flat)

    def _update(self, group: dict[str, Any], flat: FlatGroup) -> None:
        """One step of ``group``: ``flat.data`` from ``flat.grad`` and ``flat.state``; a tensor
        hyperparameter as its ``flat.vector`` (per-element, or a 0-dim tensor)."""
        raise NotImplementedError

    @property
    def state(self) -> dict[Parameter, dict[str, Any]]:
        """``{parameter: its state}`` like torch.optim's ``state``, built on each access: its
        tensors are views of the live state (in-place writes reach the optimizer, new keys do
        not); empty before the first step."""
        return {
            param: state
            for flat in self._flat
            for param, state in zip(flat.params, flat.param_states(), strict=True)
            if state
        }

    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {...}}, "param_groups": [{..., "params": [indices]}]}``, torch's
        layout; the state tensors are views of the live state, as torch's are."""
        groups, states, start = [], {}, 0
        for group, flat in zip(self.param_groups, self._flat, strict=True):
            indices = list(range(start, start + len(flat.params)))
            start += len(indices)
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": indices})
            states.update(
                (index, state)
                for index, state in zip(indices, flat.param_states(), strict=True)
                if state
            )
        return {"state": states, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Load a state dict of this optimizer or of its torch.optim twin (copied, cast to the
        parameters' dtype and device). Groups and parameters are matched by position, as torch
        does; the loaded hyperparameters replace the current ones. Raises ValueError, changing
        nothing, when the groups, parameters, state shapes or torch-only switches do not fit."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"loaded state dict has {len(saved_groups)} parameter group(s), "
                f"this optimizer has {len(self.param_groups)}"
            )
        loaded = []
        for index, (saved, flat) in enumerate(zip(saved_groups, self._flat, strict=True)):
            if len(saved["params"]) != len(flat.params):
                raise ValueError(
                    f"loaded parameter group {index} has {len(saved['params'])} parameters, "
                    f"this optimizer's has {len(flat.params)}"
                )
            missing = sorted(set(self.defaults) - set(self.torch_only) - set(saved))
            if missing:
                raise ValueError(
                    f"loaded parameter group {index} lacks {type(self).__name__} option(s) "
                    f"{missing}"
                )
            # Kept as saved, like torch (other keys too: a scheduler's initial_lr, param_names).
            group = {**saved, "params": flat.params}
            for key, default in self.torch_only.items():
                group.setdefault(key, default)
            self._validate(group)
            states = [state_dict["state"].get(i, {}) for i in saved["params"]]
            loaded.append((group, self._flat_state(index, group, flat, states)))
        for index, (group, state) in enumerate(loaded):
            self.param_groups[index] = group
            self._flat[index].state = state

    def _flat_state(
        self, index: int, group: dict[str, Any], flat: FlatGroup, states: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """One group's per-parameter states (torch's layout) as one flat state."""
        where = f"loaded state of parameter group {index}"
        if not any(states):
            return {}
        keys = self._state_keys(group)
        for position, (state, shape) in enumerate(zip(states, flat.shapes, strict=True)):
            if sorted(state) != sorted(keys):
                raise ValueError(
                    f"{where}: parameter {position} has state {sorted(state)}, "
                    f"expected {sorted(keys)}"
                )
            for key in keys:
                if key != "step" and tuple(state[key].shape) != tuple(shape):
                    raise ValueError(
                        f"{where}: {key!r} of parameter {position} has shape "
                        f"{tuple(state[key].shape)}, the parameter has {tuple(shape)}"
                    )
        flat_state: dict[str, Any] = {}
        for key in keys:
            if key == "step":
                steps = {float(state["step"]) for state in states}
                if len(steps) != 1:
                    raise ValueError(f"{where}: the parameters have different steps {steps}")
                flat_state["step"] = int(steps.pop())
            else:
                values = [state[key].reshape(-1) for state in states]
                flat_state[key] = torch.cat(values).to(flat.data)
        return flat_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for index, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {index}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join([*lines, ")"])
