"""`Parameter` and `Module`: the two base classes every layer is built from.

A `Module` runs `forward(x)` and caches what its hand-written `backward(grad_output)` needs;
`backward` returns dL/dx and *accumulates* (+=) dL/dparam into each `Parameter.grad`, like torch.
Sub-modules and parameters assigned as attributes are registered in order, so `named_parameters()`
and `state_dict()` give the same dotted keys as the equivalent `torch.nn` model.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch


class Parameter:
    """A trainable tensor `data` and its gradient `grad` (same shape, dtype, device).

    Unlike torch, `grad` is allocated (zeros) at creation and is only ever updated in place,
    so an optimizer may keep views of it.
    """

    def __init__(self, data: torch.Tensor) -> None:
        self.data = data
        self.grad = torch.zeros_like(data)

    @property
    def shape(self) -> torch.Size:
        return self.data.shape

    @property
    def dtype(self) -> torch.dtype:
        return self.data.dtype

    @property
    def device(self) -> torch.device:
        return self.data.device

    def numel(self) -> int:
        return self.data.numel()

    def __repr__(self) -> str:
        return f"Parameter containing:\n{self.data!r}"


class Module:
    """Base class: `forward`, `backward`, parameter registry, state dict, device/dtype moves."""

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value: object) -> None:
        # Fast path first: forward caches tensors here on every call.
        registered = self.__dict__.get("_parameters", ()), self.__dict__.get("_modules", ())
        if isinstance(value, (Parameter, Module)) or name in registered[0] or name in registered[1]:
            self._register(name, value)
        object.__setattr__(self, name, value)

    def _register(self, name: str, value: object) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() call in {type(self).__name__}"
            )
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value

    # -- computation ---------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, grad_output: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    def _saved(self, tensor: torch.Tensor | None) -> torch.Tensor:
        """Return a tensor cached by forward, or say clearly that forward has not run."""
        if tensor is None:
            raise RuntimeError(
                f"{type(self).__name__}.backward() called before forward(): "
                "run a forward pass first (backward uses what forward cached)"
            )
        return tensor

    # -- registry ------------------------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, module in self._modules.items():
            yield from module.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def children(self) -> Iterator[Module]:
        yield from self._modules.values()

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        for module_name, module in self.named_modules(prefix):
            for name, param in module._parameters.items():
                yield (f"{module_name}.{name}" if module_name else name), param

    def parameters(self) -> Iterator[Parameter]:
        for _, param in self.named_parameters():
            yield param

    def zero_grad(self) -> None:
        """Set every parameter gradient to zero (in place: views stay valid)."""
        for param in self.parameters():
            param.grad.zero_()

    def train(self, mode: bool = True) -> Module:
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        """`{dotted name: tensor}` with torch.nn's keys and shapes (tensors share storage)."""
        return {name: param.data for name, param in self.named_parameters()}

    def load_state_dict(self, state_dict: Mapping[str, torch.Tensor], strict: bool = True) -> None:
        """Copy tensors into the existing parameters (dtype/device converted, like torch)."""
        own = dict(self.named_parameters())
        missing = sorted(own.keys() - state_dict.keys())
        unexpected = sorted(state_dict.keys() - own.keys())
        if strict and (missing or unexpected):
            raise KeyError(
                f"Error loading state_dict into {type(self).__name__}: "
                f"missing keys {missing}, unexpected keys {unexpected}"
            )
        for name, param in own.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            if tuple(value.shape) != tuple(param.shape):
                raise ValueError(
                    f"size mismatch for {name}: checkpoint has {tuple(value.shape)}, "
                    f"this model has {tuple(param.shape)}"
                )
            param.data.copy_(value.detach())

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> Module:
        """Move/cast every parameter and its gradient. Build optimizers after moving."""
        if dtype is not None and not dtype.is_floating_point:
            raise TypeError(f"Module.to only accepts floating point dtypes, got {dtype}")
        for param in self.parameters():
            param.data = param.data.to(device=device, dtype=dtype)
            param.grad = param.grad.to(device=device, dtype=dtype)
        return self

    def double(self) -> Module:
        return self.to(dtype=torch.float64)

    def float(self) -> Module:
        return self.to(dtype=torch.float32)

    # -- printing ------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        children = [
            f"  ({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()
        ]
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        return f"{type(self).__name__}(\n" + "\n".join(children) + "\n)"
