"""Dropout, with the mask drawn from a generator the caller controls."""

from __future__ import annotations

import torch

from .module import Module, check_number


class Dropout(Module):
    r"""Inverted dropout (PyTorch's ``nn.Dropout``). In training mode

    .. math::
        y = x \odot m / (1 - p), \qquad m_i \sim \operatorname{Bernoulli}(1 - p)

    and backward is :math:`\partial L/\partial x = g \odot m / (1 - p)` with the same mask; in
    eval mode (and for ``p = 0``) :math:`y = x` and :math:`\partial L/\partial x = g`; for
    ``p = 1``, :math:`y = 0 \cdot x`.

    The mask is drawn as torch's CPU dropout draws it, ``bernoulli_(1 - p)`` into a new tensor
    of x's shape (no draw for p = 0 or 1), so from the same generator state it is torch's mask,
    bit for bit. (It is filled in row-major order whatever x's strides; torch fills
    ``empty_like(x)`` in memory order, which is the same for the contiguous inputs it usually
    gets.)

    Args:
        p: probability of zeroing an element, in [0, 1].
        inplace: if ``True``, multiply the input in place (as torch's ``inplace``).
        generator: the ``torch.Generator`` the masks are drawn from (``None``: torch's global
            one, like PyTorch). A harness may also set the ``generator`` attribute later.

    Shape:
        - Input: any shape.
        - Output: the input's shape.
    """

    _cache = ("noise", "output_shape")

    def __init__(
        self, p: float = 0.5, inplace: bool = False, *, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.p = check_number("Dropout", "p", p, 0.0, 1.0)
        self.inplace = inplace
        self.generator = generator
        self.noise: torch.Tensor | None = None  # m / (1 − p), or None when y = x
        self.output_shape: torch.Size | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.output_shape = x.shape
        if not self.training or self.p == 0 or x.numel() == 0:
            self.noise = None
            return x
        if self.p == 1:
            noise = x.new_zeros(())  # torch: x · 0 (NaN stays NaN)
        else:
            # Drawn in row-major order whatever x's strides (our Conv2d's outputs are laid out
            # batch innermost): the mask depends on the shape and the generator only.
            noise = x.new_empty(x.shape).bernoulli_(1 - self.p, generator=self.generator)
            noise.div_(1 - self.p)  # (x's shape) m / (1 − p)
        self.noise = noise
        return x.mul_(noise) if self.inplace else x * noise

    def backward(self, grad_output: torch.Tensor) -> torch.Tensor:
        shape = self._saved(self.output_shape)
        if grad_output.shape != shape:
            raise ValueError(
                f"{self!r}: expected grad_output of shape {tuple(shape)} (its forward output), "
                f"got {tuple(grad_output.shape)}"
            )
        noise = self.noise
        self._release()
        return grad_output if noise is None else grad_output * noise

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
