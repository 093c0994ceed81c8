"""`Sequential`: chains modules forward, walks them in reverse for backward, and owns the
initialisation of its Linear and Conv2d layers (with the gain of the activation that follows
each)."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from . import init as init_
from .activation import Activation
from .conv import Conv2d
from .linear import Linear
from .module import Module

# The layers with weights that Sequential initialises (fans from the weight's shape: a Conv2d's
# receptive field counts, as in torch's nn.init).
_WEIGHTED = (Linear, Conv2d)

INIT_SCHEMES = ("default", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal")


class Sequential(Module):
    """``y = fₙ(…f₂(f₁(x)))``; backward: ``g ← fᵢ.backward(g)`` for i = n … 1, returns dL/dx.

    Args:
        *modules: the layers, registered as ``"0"``, ``"1"``, … like PyTorch's ``nn.Sequential``.
        init: how to (re)initialise every Linear and Conv2d layer: ``"default"`` (the layer's
            own, as PyTorch's), ``"xavier_uniform"``, ``"xavier_normal"``, ``"kaiming_uniform"``,
            ``"kaiming_normal"``. Xavier and Kaiming weights get the gain of the activation
            after the layer (before the next Linear/Conv2d; ``calculate_gain``; 1 when none
            follows) and zero biases.
        generator: a seeded ``torch.Generator`` for the initial weights. With ``init="default"``
            and no generator the layers keep the weights drawn at construction, exactly as
            ``torch.manual_seed(s)`` followed by the same ``torch.nn`` constructors would draw.
    """

    def __init__(
        self, *modules: Module, init: str = "default", generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        for index, module in enumerate(modules):
            if not isinstance(module, Module):
                raise TypeError(
                    f"Sequential: argument {index} is {type(module).__name__}, not a Module"
                )
            first = next((i for i, m in enumerate(modules[:index]) if m is module), None)
            if first is not None:
                raise ValueError(
                    f"Sequential: argument {index} is the same {type(module).__name__} object as "
                    f"argument {first}; a layer caches its input for backward, so one object "
                    "cannot stand at two places: pass a new instance for each"
                )
            setattr(self, str(index), module)
        # A tuple for the hot loop: attribute look-ups by name would cost on every step.
        self._layers = tuple(modules)
        # The order forward runs the layers in (backward: reversed), as indices into _layers:
        # theirs, except where a subclass runs an equivalent program (StackedSequential).
        self._program = tuple(range(len(modules)))
        if init != "default" or generator is not None:
            self.reset_parameters(init, generator)

    def reset_parameters(
        self, init: str = "default", generator: torch.Generator | None = None
    ) -> None:
        """Re-initialise every Linear and Conv2d layer, in order, drawing from ``generator``."""
        if init not in INIT_SCHEMES:
            raise ValueError(f"init must be one of {', '.join(INIT_SCHEMES)}; got {init!r}")
        for index, layer in enumerate(self._layers):
            if not isinstance(layer, _WEIGHTED):
                continue
            if init == "default":
                layer.reset_parameters(generator)
                continue
            name, param = self._nonlinearity_after(index)
            weight = layer.weight.data
            if init == "xavier_uniform":
                init_.xavier_uniform_(weight, init_.calculate_gain(name, param), generator)
            elif init == "xavier_normal":
                init_.xavier_normal_(weight, init_.calculate_gain(name, param), generator)
            elif init == "kaiming_uniform":
                init_.kaiming_uniform_(weight, param or 0, "fan_in", name, generator)
            else:
                init_.kaiming_normal_(weight, param or 0, "fan_in", name, generator)
            if layer.bias is not None:
                init_.zeros_(layer.bias.data)

    def _nonlinearity_after(self, index: int) -> tuple[str, float | None]:
        """The activation between layer ``index`` and the next Linear or Conv2d (``"linear"`` if
        none)."""
        for layer in self._layers[index + 1 :]:
            if isinstance(layer, _WEIGHTED):
                break
            if isinstance(layer, Activation):
                return layer.nonlinearity, layer.nonlinearity_param
        return "linear", None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layers, index, fresh = self._layers, 0, False
        try:
            for index in self._program:
                layer = layers[index]
                # An activation after a layer whose output is new and unreferenced (Linear)
                # works in place: no allocation, which for a stacked model costs more than the
                # arithmetic (framework.module's contract, 2 and 4).
                if fresh and isinstance(layer, Activation):
                    x = layer._forward_inplace(x)
                else:
                    x = layer(x)
                fresh = layer._fresh_output
        except (ValueError, TypeError) as error:
            # Say which layer of the model refused its input, not only what it was (the original
            # stays the cause, with its traceback).
            raise type(error)(f"Sequential layer ({index}): {error}") from error
        return x

    def backward(
        self, grad_output: torch.Tensor, *, input_grad: bool = True
    ) -> torch.Tensor | None:
        """dL/dx from dL/dy, accumulating every parameter's gradient; with
        ``input_grad=False`` dL/dx is not computed (None is returned), as torch skips it for
        an input that does not require grad: the first Linear's product is saved.

        Where a gradient is a later layer's new tensor (not the caller's), an activation
        computes its own in place, overwriting that gradient and its cached output (which then
        went only to later layers, all done with it): framework.module's contract, 3 and 5."""
        layers, program = self._layers, self._program
        index, private = len(layers), False
        try:
            for index in reversed(program):
                layer = layers[index]
                if private and isinstance(layer, Activation):
                    grad_output = layer._backward_inplace(grad_output)
                    continue
                accumulate = getattr(layer, "_accumulate", None)
                if index == program[0] and not input_grad and accumulate is not None:
                    accumulate(grad_output)
                    return None
                grad_output = layer.backward(grad_output)
                private = layer._fresh_grad
        except (ValueError, RuntimeError) as error:
            # Which layer refused the gradient, or was asked for a second backward.
            raise type(error)(f"Sequential layer ({index}) backward: {error}") from error
        return grad_output if input_grad else None

    def __getitem__(self, index: int | slice) -> Module:
        if isinstance(index, slice):  # like torch: a slice is a Sequential of the same modules
            return Sequential(*self._layers[index])
        return self._layers[index]

    def __len__(self) -> int:
        return len(self._layers)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._layers)
