"""Element-wise activations. Each caches what its backward needs; derivatives at the kinks
follow torch's autograd exactly (ReLU'(0) = 0, LeakyReLU'(0) = slope, ELU'(0) = alpha)."""

from __future__ import annotations

import inspect
from typing import Any

import torch

from .module import Module, check_number


class Activation(Module):
    """Base of the element-wise activations, :math:`y_i = f(x_i)`: each acts on a stacked
    model's ``(M, B, …)`` tensor exactly as on each model's slice, so `framework.stack` shares
    one between the M models.

    A new activation is one class, with no edit elsewhere: a subclass with ``forward`` and
    ``backward`` (caching in ``input`` / ``output``, read with `_saved`, freed with `_release`)
    whose *hyperparameters are its constructor arguments, each stored as an attribute of the
    same name* (``def __init__(self, alpha=1.0): ...; self.alpha = alpha``). That rule is all
    `framework.stack` needs: it reads the arguments from ``inspect.signature(type(layer).__init__)``
    and their values from those attributes, to refuse models whose values differ (ValueError
    naming the argument) and to make fresh copies (`stack`, `unstack`); the default
    `extra_repr` shows them too.

    Optionally: ``nonlinearity`` and ``nonlinearity_param`` name the activation for
    :func:`framework.init.calculate_gain` (``Sequential`` uses them to scale the initial weights
    of the Linear layer before it); `_forward_inplace` / `_backward_inplace` are faster variants
    for a container that owns the tensors, under the contract in framework.module's docstring
    ("In place and ownership").
    """

    nonlinearity: str = "linear"
    nonlinearity_param: float | None = None
    _cache = ("input", "output")
    _fresh_grad = True  # framework.module's contract, 3 (5 for the in-place variant)

    def __init__(self) -> None:
        super().__init__()
        self.input: torch.Tensor | None = None
        self.output: torch.Tensor | None = None

    def hyperparameters(self) -> dict[str, Any]:
        """``{argument: value}`` for each constructor argument, read from the attribute of the
        same name (the rule above), in the constructor's order."""
        names = inspect.signature(type(self).__init__).parameters
        return {name: getattr(self, name) for name in names if hasattr(self, name)}

    def extra_repr(self) -> str:
        """The hyperparameters, ``name=value`` for each constructor argument."""
        return ", ".join(
            f"{name}={value!r}" if isinstance(value, str) else f"{name}={value}"
            for name, value in self.hyperparameters().items()
        )

    # In-place variants, for a container that owns the tensors (``Sequential``): the same values
    # as forward/backward without allocating (a fresh tensor of a stacked model's size costs more
    # than the arithmetic: new pages, cold caches). The defaults are the out-of-place ones.
    def _forward_inplace(self, x: torch.Tensor) -> torch.Tensor:
        """forward, free to overwrite ``x`` (framework.module's contract, 4)."""
        return self.forward(x)

    def _backward_inplace(self, grad_output: torch.Tensor) -> torch.Tensor:
        """backward, free to overwrite ``grad_output`` and the cached output (framework.module's
        contract, 5)."""
        return self.backward(grad_output)


class ReLU(Activation):
    """max(0, x) (NaN stays NaN); backward: g · 1[y ≠ 0], i.e. g where x > 0 or x is NaN, 0
    where x ≤ 0: torch's rule (its gradient is 0 where y ≤ 0, so a NaN input passes g on).
    (For a non-finite g at x ≤ 0 the product is NaN where torch gives 0.)"""

    nonlinearity = "relu"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.output = x.clamp_min(0)
        return self.output

    def backward(self, grad_output: torch.Tensor) -> torch.Tensor:
        # y ≥ 0 or NaN, so 1[y ≠ 0] is the mask, written as 0./1. in the gradient's dtype: a
        # float multiply, not a bool mask that torch must cast first (3× slower); and the mask
        # is our own temporary, so the product goes into it (one allocation, not two).
        output = self._saved(self.output, grad_output)
        self._release()
        return torch.ne(output, 0, out=torch.empty_like(output)).mul_(grad_output)

    def _forward_inplace(self, x: torch.Tensor) -> torch.Tensor:
        self.output = x.clamp_min_(0)
        return self.output

    def _backward_inplace(self, grad_output: torch.Tensor) -> torch.Tensor:
        output = self._saved(self.output, grad_output)
        self._release()
        return grad_output.mul_(torch.ne(output, 0, out=output))  # the output becomes the mask


class LeakyReLU(Activation):
    """x if x > 0 else negative_slope · x; backward: g if x > 0 else negative_slope · g."""

    nonlinearity = "leaky_relu"

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        negative_slope = check_number("LeakyReLU", "negative_slope", negative_slope)
        self.negative_slope = negative_slope
        self.nonlinearity_param = negative_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.input = x
        return torch.where(x > 0, x, x * self.negative_slope)

    def backward(self, grad_output: torch.Tensor) -> torch.Tensor:
        positive = self._saved(self.input, grad_output) > 0
        self._release()
        return torch.where(positive, grad_output, grad_output * self.negative_slope)


class ELU(Activation):
    """x if x > 0 else alpha · (eˣ − 1); backward: g if x > 0 else g · alpha · eˣ.

    PyTorch's ``nn.init`` has no gain for ELU; Sequential uses ReLU's √2 (He et al.'s analysis,
    which Clevert et al. used to initialise ELU networks).
    """

    nonlinearity = "relu"

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = check_number("ELU", "alpha", alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.input = x
        self.output = torch.where(x > 0, x, torch.expm1(x) * self.alpha)
        return self.output

    def backward(self, grad_output: torch.Tensor) -> torch.Tensor:
        positive = self._saved(self.input, grad_output) > 0
        # alpha · eˣ = output + alpha on the negative side: no second exp.
        grad_input = torch.where(positive, grad_output, grad_output * (self.output + self.alpha))
        self._release()
        return grad_input


class GELU(Activation):
    r"""Gaussian Error Linear Unit (Hendrycks & Gimpel, 2016), as PyTorch's ``nn.GELU``:

    .. math::
        \text{none: } y = x \, \Phi(x) = \tfrac{x}{2} \left(1 + \operatorname{erf}(x / \sqrt 2)
        \right), \qquad
        \text{tanh: } y = \tfrac{x}{2} \left(1 + \tanh u\right),\;
        u = \sqrt{2/\pi}\,(x + 0.044715\,x^3)

    Backward: :math:`g \cdot (\Phi(x) + x \varphi(x))` with :math:`\varphi(x) = e^{-x^2/2} /
    \sqrt{2\pi}`; with ``"tanh"``, :math:`g \cdot \tfrac12 \left(1 + \tanh u + x (1 - \tanh^2
    u) \sqrt{2/\pi}\,(1 + 3 \cdot 0.044715\,x^2)\right)` (torch's kernels' order of operations).

    PyTorch's ``nn.init`` has no gain for GELU; Sequential uses ReLU's √2 (GELU is ReLU weighted
    by Φ, and equals it for large |x|), as for ELU.

    Args:
        approximate: ``"none"`` (the exact Φ) or ``"tanh"`` (the tanh approximation).
    """

    nonlinearity = "relu"
    # torch's constants (C's M_SQRT1_2, M_2_SQRTPI, M_SQRT2), products in its kernels' order
    _SQRT1_2 = 0.70710678118654752440
    _PDF = 1.12837916709551257390 * _SQRT1_2 * 0.5  # 1/√(2π)
    _BETA = 1.41421356237309504880 * 1.12837916709551257390 * 0.5  # √(2/π)
    _KAPPA = 0.044715

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.input = x
        if self.approximate == "tanh":
            inner = (x + x * x * x * self._KAPPA) * self._BETA  # u
            return x * 0.5 * (1 + torch.tanh(inner))
        return x * 0.5 * (1 + torch.erf(x * self._SQRT1_2))

    def backward(self, grad_output: torch.Tensor) -> torch.Tensor:
        x = self._saved(self.input, grad_output)
        self._release()
        if self.approximate == "tanh":
            square = x * x
            tanh = torch.tanh((x + square * x * self._KAPPA) * self._BETA)
            inner_derivative = (1 + square * (3 * self._KAPPA)) * self._BETA  # du/dx
            derivative = (1 + tanh) * 0.5 + x * 0.5 * (1 - tanh * tanh) * inner_derivative
        else:
            cdf = (1 + torch.erf(x * self._SQRT1_2)) * 0.5  # Φ(x)
            pdf = torch.exp(x * x * -0.5) * self._PDF  # φ(x)
            derivative = cdf + x * pdf
        return grad_output * derivative


class Tanh(Activation):
    """tanh(x); backward: g · (1 − tanh²(x))."""

    nonlinearity = "tanh"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.output = x.tanh()
        return self.output

    def backward(self, grad_output: torch.Tensor) -> torch.Tensor:
        y = self._saved(self.output, grad_output)
        self._release()
        return grad_output * (1 - y * y)

    def _forward_inplace(self, x: torch.Tensor) -> torch.Tensor:
        self.output = x.tanh_()
        return self.output

    def _backward_inplace(self, grad_output: torch.Tensor) -> torch.Tensor:
        y = self._saved(self.output, grad_output)
        self._release()
        return grad_output.addcmul_(grad_output, y.square_(), value=-1)  # g − g y², y² in y


class Sigmoid(Activation):
    """σ(x) = 1 / (1 + e⁻ˣ); backward: g · (1 − σ(x)) · σ(x)."""

    nonlinearity = "sigmoid"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.output = x.sigmoid()
        return self.output

    def backward(self, grad_output: torch.Tensor) -> torch.Tensor:
        y = self._saved(self.output, grad_output)
        self._release()
        # (1 − y) is our own temporary: multiply into it, in torch's kernel order (same rounding).
        return torch.rsub(y, 1).mul_(grad_output).mul_(y)

    def _forward_inplace(self, x: torch.Tensor) -> torch.Tensor:
        self.output = x.sigmoid_()
        return self.output
