"""Flatten: merge a range of dimensions (between the conv stack and the classifier head)."""

from __future__ import annotations

import torch

from .module import Module, check_size


class Flatten(Module):
    """``y = x.flatten(start_dim, end_dim)`` (PyTorch's ``nn.Flatten``); backward: the gradient
    reshaped back to the input's shape, ``dL/dx = reshape(g, x.shape)``.

    Args:
        start_dim: first dimension to merge (default 1: keep the batch dimension).
        end_dim: last dimension to merge (default −1).

    Shape:
        - Input: ``(N, *dims)``
        - Output: ``(N, ∏ dims)`` with the defaults; in general the dimensions
          ``start_dim … end_dim`` merged into one.
    """

    _cache = ("input_shape", "output_shape")

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        for name, value in (("start_dim", start_dim), ("end_dim", end_dim)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"Flatten: {name} must be an int, got {value!r}")
        self.start_dim = start_dim
        self.end_dim = end_dim
        self.input_shape: torch.Size | None = None
        self.output_shape: torch.Size | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            y = x.flatten(self.start_dim, self.end_dim)
        except (IndexError, RuntimeError) as error:
            raise ValueError(f"{self!r}: cannot flatten input of shape {tuple(x.shape)}") from error
        self.input_shape, self.output_shape = x.shape, y.shape
        return y

    def backward(self, grad_output: torch.Tensor) -> torch.Tensor:
        input_shape = self._saved(self.input_shape)
        if grad_output.shape != self.output_shape:
            raise ValueError(
                f"{self!r}: expected grad_output of shape {tuple(self.output_shape)} (its forward "
                f"output), got {tuple(grad_output.shape)}"
            )
        self._release()
        return grad_output.reshape(input_shape)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


def _shifted(dim: int) -> int:
    """A model's dimension in the stacked tensor: one further for a non-negative index (the
    model dimension comes first), the same counted from the end."""
    return dim + 1 if dim >= 0 else dim


class StackedFlatten(Flatten):
    """M ``Flatten`` layers of one configuration at once (`framework.stack`):
    ``y_m = x_m.flatten(start_dim, end_dim)`` for each model m, i.e. ``x.flatten(start_dim + 1,
    end_dim + 1)`` of the stacked tensor (a negative dimension unchanged); backward: ``dL/dx =
    reshape(g, x.shape)``.

    Args:
        models: M, the number of stacked models.
        start_dim, end_dim: each model's, as ``Flatten``'s.

    Shape:
        - Input: ``(M, N, *dims)``
        - Output: ``(M, N, ∏ dims)`` with the defaults.
    """

    def __init__(self, models: int, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__(start_dim, end_dim)
        self.models = check_size("StackedFlatten", "models", models)

    @classmethod
    def stack_of(cls, layers: list[Flatten]) -> StackedFlatten:
        """The stacked layer of ``layers`` (alike: `framework.stack` checked them)."""
        return cls(len(layers), layers[0].start_dim, layers[0].end_dim)

    def unstack_one(self, index: int) -> Flatten:
        """Model ``index``'s own layer."""
        return Flatten(self.start_dim, self.end_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2 or x.shape[0] != self.models:
            raise ValueError(
                f"{self!r}: expected input of shape ({self.models}, N, ...), got {tuple(x.shape)}"
            )
        try:
            y = x.flatten(_shifted(self.start_dim), _shifted(self.end_dim))
        except (IndexError, RuntimeError) as error:
            raise ValueError(f"{self!r}: cannot flatten input of shape {tuple(x.shape)}") from error
        self.input_shape, self.output_shape = x.shape, y.shape
        return y

    def extra_repr(self) -> str:
        return f"models={self.models}, " + super().extra_repr()
