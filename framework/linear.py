"""The fully connected layer."""

from __future__ import annotations

import math

import torch

from . import init
from .module import Module, Parameter, check_size

_ONES: dict[tuple[int, torch.dtype, torch.device], torch.Tensor] = {}


def ones(n: int, like: torch.Tensor) -> torch.Tensor:
    """A vector of n ones with ``like``'s dtype and device, made once and shared (read only)."""
    key = (n, like.dtype, like.device)
    vector = _ONES.get(key)
    if vector is None:
        vector = _ONES[key] = torch.ones(n, dtype=like.dtype, device=like.device)
    return vector


class Linear(Module):
    r"""Affine map :math:`y = x W^\top + b`.

    Backward, with :math:`g = \partial L / \partial y`:
    :math:`\partial L/\partial x = g W`, :math:`\partial L/\partial W \mathrel{+}= g^\top x`,
    :math:`\partial L/\partial b \mathrel{+}= \sum_n g_n = g^\top \mathbf 1`.

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
        bias: if ``False``, the layer learns no additive bias.
        device, dtype: where and in what precision the parameters live (torch's defaults).

    Shape:
        - Input: ``(N, in_features)``
        - Output: ``(N, out_features)``

    Attributes:
        weight: ``(out_features, in_features)``, initialised like PyTorch's ``nn.Linear``:
            kaiming_uniform(a=√5), i.e. U(−1/√in, 1/√in).
        bias: ``(out_features,)``, U(−1/√in, 1/√in).
    """

    _cache = ("input",)
    # New tensors from addmm/mm, not kept (framework.module's contract, 2 and 3).
    _fresh_output = _fresh_grad = True

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features = check_size("Linear", "in_features", in_features)
        self.out_features = check_size("Linear", "out_features", out_features)
        factory = {"device": device, "dtype": dtype}
        self.weight = Parameter(torch.empty(out_features, in_features, **factory))
        self.bias = Parameter(torch.empty(out_features, **factory)) if bias else None
        self.input: torch.Tensor | None = None
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """PyTorch's ``nn.Linear`` default initialisation (same draws, same order)."""
        init.kaiming_uniform_(self.weight.data, a=math.sqrt(5), generator=generator)
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features)
            init.uniform_(self.bias.data, -bound, bound, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.data
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"{self!r}: expected input of shape (N, {self.in_features}), got {tuple(x.shape)}"
            )
        if x.dtype != weight.dtype:
            raise TypeError(
                f"{self!r}: input dtype {x.dtype} does not match weight dtype {weight.dtype}"
            )
        self.input = x
        if self.bias is None:
            return x.mm(weight.t())  # (N, out)
        return torch.addmm(self.bias.data, x, weight.t())  # (N, out), one fused kernel

    def backward(self, grad_output: torch.Tensor) -> torch.Tensor:
        self._accumulate(grad_output)
        return grad_output.mm(self.weight.data)  # (N, in)

    def _accumulate(self, grad_output: torch.Tensor) -> None:
        """The parameters' part of backward (all of it when dL/dx is not wanted)."""
        x = self._saved(self.input)
        if grad_output.shape != (x.shape[0], self.out_features):
            raise ValueError(
                f"{self!r}: expected grad_output of shape ({x.shape[0]}, {self.out_features}), "
                f"got {tuple(grad_output.shape)}"
            )
        # In place into .grad: accumulates like torch, into the optimizer's flat buffer if any.
        grad_t = grad_output.t()
        self.weight.grad.addmm_(grad_t, x)  # (out, in) += (out, N) @ (N, in)
        if self.bias is not None:
            # Σₙ gₙ as gᵀ·1: one kernel instead of a reduction and an add (a small model's step
            # is mostly per-kernel overhead).
            self.bias.grad.addmv_(grad_t, ones(x.shape[0], x))  # (out,)
        self._release()

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )
