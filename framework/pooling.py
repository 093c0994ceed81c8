"""2-d max pooling: a running max over the kernel cells, the gradient routed to the argmax."""

from __future__ import annotations

import torch

from .conv import _output_size, _pair
from .module import Module


def _layout(x: torch.Tensor) -> tuple[int, ...]:
    """x's dimensions from outermost to innermost in memory (ties keep the logical order)."""
    return tuple(sorted(range(x.dim()), key=lambda d: -x.stride(d)))


def _empty(shape: tuple[int, ...], layout: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """An uninitialised tensor of ``shape`` whose memory is ordered by ``layout`` (dtype and
    device of ``like``): element-wise kernels then run over matching strides."""
    stored = like.new_empty([shape[d] for d in layout])
    return stored.permute([layout.index(d) for d in range(len(layout))])


class MaxPool2d(Module):
    r"""Max over each ``kh × kw`` window (PyTorch's ``nn.MaxPool2d`` without padding, dilation
    or ``ceil_mode``):

    .. math::
        y_{n,c,i,j} = \max_{0 \le a < k_h,\; 0 \le b < k_w} x_{n,c,\,s_h i + a,\,s_w j + b}

    Backward: each output gradient goes to the input position that won its window,
    :math:`\partial L/\partial x_{n,c,p} = \sum_{(i,j):\, \operatorname{argmax}_{ij} = p}
    g_{n,c,i,j}` (summed where overlapping windows share a winner). The winner is the one
    torch's CPU kernel picks: the first maximum in row-major window order, or the last NaN.

    Args:
        kernel_size: the window, ``k`` or ``(kh, kw)``.
        stride: step between windows, int or pair; default ``kernel_size`` (like torch).

    Shape:
        - Input: ``(N, C, H, W)``
        - Output: ``(N, C, OH, OW)`` with ``OH = ⌊(H − kh) / stride[0]⌋ + 1`` (and likewise OW).
    """

    _cache = ("index", "input_shape", "input_layout")

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        self.kernel_size = _pair("MaxPool2d", "kernel_size", kernel_size, 1)
        self.stride = (
            self.kernel_size if stride is None else _pair("MaxPool2d", "stride", stride, 1)
        )
        self.index: torch.Tensor | None = None  # (N, C, OH, OW) winning cell a·kw + b, as floats
        self.input_shape: torch.Size | None = None
        self.input_layout: tuple[int, ...] | None = None

    def _cells(self, x: torch.Tensor, oh: int, ow: int) -> list[torch.Tensor]:
        """For each kernel cell (a, b) in row-major order, the (N, C, OH, OW) strided view of
        the input value that cell sees in every window."""
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        return [
            x[:, :, a : a + sh * (oh - 1) + 1 : sh, b : b + sw * (ow - 1) + 1 : sw]
            for a in range(kh)
            for b in range(kw)
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(
                f"{self!r}: expected input of shape (N, C, H, W), got {tuple(x.shape)}"
            )
        oh, ow = _output_size(self, tuple(x.shape[2:]), self.kernel_size, self.stride)
        # One pass per kernel cell over (N, C, OH, OW) views of x: no window copy and no
        # reduction over a short last dimension (both slow on CPU). The masks are written as
        # 0./1. floats into tensors laid out like x (bool results cost 4x more on CPU).
        layout = _layout(x)
        first, *rest = self._cells(x, oh, ow)
        best, index = first, _empty(first.shape, layout, x).zero_()
        wins, nan = _empty(first.shape, layout, x), _empty(first.shape, layout, x)
        for cell_index, cell in enumerate(rest, 1):
            # torch's CPU kernel: a later cell wins if strictly greater (ties keep the first
            # maximum) or NaN (the last NaN wins); the two cases exclude each other.
            torch.gt(cell, best, out=wins).add_(torch.ne(cell, cell, out=nan))
            best = torch.maximum(best, cell)  # = the winner's value (NaN propagates)
            # Cells come in increasing order, so a win makes the index the largest so far.
            index = torch.maximum(index, wins.mul_(cell_index))
        self.index, self.input_shape, self.input_layout = index, x.shape, layout
        return best if rest else best.clone()  # (N, C, OH, OW)

    def backward(self, grad_output: torch.Tensor) -> torch.Tensor:
        index = self._saved(self.index, grad_output)
        input_shape, layout = self.input_shape, self.input_layout
        self._release()
        grad_input = _empty(input_shape, layout, grad_output).zero_()  # (N, C, H, W)
        mask = torch.empty_like(index)
        oh, ow = index.shape[2:]
        for cell_index, cell in enumerate(self._cells(grad_input, oh, ow)):
            # Add, not assign: overlapping windows (stride < kernel) may share a winner.
            cell.addcmul_(grad_output, torch.eq(index, cell_index, out=mask))
        return grad_input

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"
