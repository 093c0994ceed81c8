"""2-d max pooling: a running max over the kernel cells, the gradient routed to the argmax."""

from __future__ import annotations

import math

import torch

from .conv import _output_size, _pair
from .module import Module, check_size


def _layout(x: torch.Tensor) -> tuple[int, ...]:
    """x's dimensions from outermost to innermost in memory (ties keep the logical order)."""
    return tuple(sorted(range(x.dim()), key=lambda d: -x.stride(d)))


def _empty(shape: tuple[int, ...], layout: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """An uninitialised tensor of ``shape`` whose memory is ordered by ``layout`` (dtype and
    device of ``like``): element-wise kernels then run over matching strides."""
    stored = like.new_empty([shape[d] for d in layout])
    return stored.permute([layout.index(d) for d in range(len(layout))])


class MaxPool2d(Module):
    r"""Max over each ``kh × kw`` window of the input padded with −∞ (PyTorch's
    ``nn.MaxPool2d`` without dilation, ``return_indices`` or ``ceil_mode``):

    .. math::
        y_{n,c,i,j} = \max_{0 \le a < k_h,\; 0 \le b < k_w}
            \tilde x_{n,c,\,s_h i + a,\,s_w j + b}

    with :math:`\tilde x` the input padded by ``padding`` on both sides of each spatial
    dimension with −∞ (padding never wins a window: at most half the kernel wide, as torch
    requires, each window holds an input value).

    Backward: each output gradient goes to the input position that won its window,
    :math:`\partial L/\partial x_{n,c,p} = \sum_{(i,j):\, \operatorname{argmax}_{ij} = p}
    g_{n,c,i,j}` (summed where overlapping windows share a winner). The winner is the one
    torch's CPU kernel picks among the window's input positions: the first maximum in
    row-major window order, or the last NaN (all −∞: the first input position).

    Args:
        kernel_size: the window, ``k`` or ``(kh, kw)``.
        stride: step between windows, int or pair; default ``kernel_size`` (like torch).
        padding: −∞ added on both sides of each spatial dimension, int or pair (default 0), at
            most half the kernel (``2·padding <= kernel_size``, torch's rule).
        dilation, return_indices, ceil_mode: torch's, accepted at their defaults (1, False,
            False) only; other values raise ValueError naming them.

    Shape:
        - Input: ``(N, C, H, W)``
        - Output: ``(N, C, OH, OW)`` with ``OH = ⌊(H + 2·padding[0] − kh) / stride[0]⌋ + 1``
          (and likewise OW).
    """

    _cache = ("index", "input", "input_shape", "input_layout")
    # The output and dL/dx are new tensors, kept nowhere (framework.module's contract, 2 and 3):
    # a ReLU next to the pooling then works in place (no tensor of its size allocated).
    _fresh_output = _fresh_grad = True

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        self.kernel_size = _pair("MaxPool2d", "kernel_size", kernel_size, 1)
        self.stride = (
            self.kernel_size if stride is None else _pair("MaxPool2d", "stride", stride, 1)
        )
        self.padding = _pair("MaxPool2d", "padding", padding, 0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size, strict=True)):
            raise ValueError(
                f"MaxPool2d: padding should be at most half of kernel_size, but got "
                f"padding={padding!r} and kernel_size={kernel_size!r} (a window of padding "
                "alone would have no maximum)"
            )
        if _pair("MaxPool2d", "dilation", dilation, 1) != (1, 1):
            raise ValueError(
                f"MaxPool2d: dilation={dilation!r} is not supported; only 1 (torch's default)"
            )
        for name, value in (("return_indices", return_indices), ("ceil_mode", ceil_mode)):
            if value:
                raise ValueError(
                    f"MaxPool2d: {name}={value!r} is not supported; only False (torch's default)"
                )
        self.index: torch.Tensor | None = None  # (N, C, OH, OW) winning cell a·kw + b, as floats
        self.input: torch.Tensor | None = None  # eval mode: the input, to find the winners from
        self.input_version = 0
        self.input_shape: torch.Size | None = None
        self.input_layout: tuple[int, ...] | None = None

    def _cells(self, x: torch.Tensor, oh: int, ow: int) -> list[torch.Tensor]:
        """For each kernel cell (a, b) in row-major order, the (N, C, OH, OW) strided view of
        the input value that cell sees in every window (any leading dimensions: (M, N, C, OH,
        OW) views for a stack)."""
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        return [
            x[..., a : a + sh * (oh - 1) + 1 : sh, b : b + sw * (ow - 1) + 1 : sw]
            for a in range(kh)
            for b in range(kw)
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(
                f"{self!r}: expected input of shape (N, C, H, W), got {tuple(x.shape)}"
            )
        return self._pool(x)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        """forward's work on x of shape (..., H, W): the last two dimensions pooled. In eval
        mode only the maxima: the winners (2/3 of the passes) are found by a backward, from
        the input, if one comes (evaluation runs forwards alone)."""
        size = tuple(x.shape[-2:])
        oh, ow = _output_size(self, size, self.kernel_size, self.stride, self.padding)
        layout = _layout(x)
        self.input_shape, self.input_layout = x.shape, layout
        if self.training:
            best, self.index = self._winners(x, oh, ow, layout)
            self.input = None
            return best
        self.index, self.input, self.input_version = None, x, x._version
        first, *rest = self._cells(self._padded(x, layout), oh, ow)
        best = _empty(first.shape, layout, x)
        for cell_index, cell in enumerate(rest, 1):  # the running maximum, NaN propagating
            torch.maximum(first if cell_index == 1 else best, cell, out=best)
        return best if rest else best.copy_(first)  # (N, C, OH, OW)

    def _winners(
        self, x: torch.Tensor, oh: int, ow: int, layout: tuple[int, ...]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(the pooled maxima, the index of each window's winning cell a·kw + b as floats), both
        (N, C, OH, OW) laid out like x."""
        # One pass per kernel cell over (N, C, OH, OW) views of x: no window copy and no
        # reduction over a short last dimension (both slow on CPU). The masks are written as
        # 0./1. floats into tensors laid out like x (bool results cost 4x more on CPU).
        first, *rest = self._cells(self._padded(x, layout), oh, ow)
        # Without padding every window starts at cell 0: the index is 0 until cell 1, whose
        # win mask (1 where it wins) is then the index itself (no zeros written, no max taken).
        padded = self.padding != (0, 0)
        index = self._first_inside(oh, ow, layout, x) if padded or not rest else None
        best = _empty(first.shape, layout, x)  # the running maximum, updated in place
        wins, nan = _empty(first.shape, layout, x), _empty(first.shape, layout, x)
        for cell_index, cell in enumerate(rest, 1):
            previous = first if cell_index == 1 else best
            # torch's CPU kernel: a later cell wins if strictly greater (ties keep the first
            # maximum) or NaN (the last NaN wins); the two cases exclude each other.
            torch.gt(cell, previous, out=wins).add_(torch.ne(cell, cell, out=nan))
            torch.maximum(previous, cell, out=best)  # = the winner's value (NaN propagates)
            if index is None:
                index, wins = wins, _empty(first.shape, layout, x)
            else:  # cells come in increasing order: a win makes the index the largest so far
                torch.maximum(index, wins.mul_(cell_index), out=index)
        return (best if rest else best.copy_(first)), index

    def _index(self) -> torch.Tensor:
        """The winners forward found (training), or found now from its input (eval)."""
        if self.index is not None:
            return self.index
        x = self._saved(self.input)
        if x._version != self.input_version:
            raise RuntimeError(
                f"{self!r}: its input was modified in place between forward and backward (in "
                "eval mode backward finds the windows' winners from the input, as torch "
                "autograd refuses a modified saved tensor)"
            )
        oh, ow = _output_size(
            self, tuple(x.shape[-2:]), self.kernel_size, self.stride, self.padding
        )
        return self._winners(x, oh, ow, self.input_layout)[1]

    def _padded(self, x: torch.Tensor, layout: tuple[int, ...]) -> torch.Tensor:
        """x itself, or with padding a copy inside a −∞ border (laid out like x): a padded cell
        is never strictly greater than the running maximum nor NaN, so it never wins."""
        (ph, pw), (*lead, h, w) = self.padding, x.shape
        if not (ph or pw):
            return x
        padded = _empty((*lead, h + 2 * ph, w + 2 * pw), layout, x).fill_(-math.inf)
        padded[..., ph : ph + h, pw : pw + w] = x
        return padded

    def _first_inside(
        self, oh: int, ow: int, layout: tuple[int, ...], x: torch.Tensor
    ) -> torch.Tensor:
        """The starting winner of each window, (N, C, OH, OW) as floats: its first cell inside
        the input in row-major order (cell 0 without padding), where torch's kernel starts, so
        a window of −∞ values routes its gradient there, not to the padding."""
        index = _empty((*x.shape[:-2], oh, ow), layout, x)
        (ph, pw), (sh, sw), kw = self.padding, self.stride, self.kernel_size[1]
        if not (ph or pw):
            return index.zero_()
        # Window (i, j) starts at padded row sh·i: its first row inside is a = max(0, ph − sh·i).
        rows = (ph - sh * torch.arange(oh, dtype=x.dtype, device=x.device)).clamp_min_(0)
        columns = (pw - sw * torch.arange(ow, dtype=x.dtype, device=x.device)).clamp_min_(0)
        return index.copy_(rows.unsqueeze(1) * kw + columns)  # (OH, OW) over every (n, c)

    def backward(self, grad_output: torch.Tensor) -> torch.Tensor:
        input_shape, layout = self._saved(self.input_shape), self.input_layout
        index = self._saved(self._index(), grad_output)  # (its shape is forward's output's)
        self._release()
        (ph, pw), (*lead, h, w) = self.padding, input_shape
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        oh, ow = index.shape[-2:]
        hp, wp = h + 2 * ph, w + 2 * pw
        # (N, C, H + 2ph, W + 2pw): the padding's share (none: it never wins) is dropped below.
        grad_input = _empty((*lead, hp, wp), layout, grad_output)
        # Windows that do not overlap (stride >= kernel): each position gets one window's share,
        # written straight into its cell (no read of a zeroed tensor); positions in no window
        # (stride > kernel, or rows and columns past the last window) must be zeroed first.
        disjoint = sh >= kh and sw >= kw
        if not disjoint or (sh, sw) != (kh, kw) or (oh * kh, ow * kw) != (hp, wp):
            grad_input.zero_()
        mask = torch.empty_like(index)
        for cell_index, cell in enumerate(self._cells(grad_input, oh, ow)):
            torch.eq(index, cell_index, out=mask)
            if disjoint:
                torch.mul(grad_output, mask, out=cell)
            else:  # add: overlapping windows may share a winner
                cell.addcmul_(grad_output, mask)
        return grad_input[..., ph : ph + h, pw : pw + w] if ph or pw else grad_input

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class StackedMaxPool2d(MaxPool2d):
    r"""M ``MaxPool2d`` layers of one configuration at once (`framework.stack`): for each model m,

    .. math::
        y_{m,n,c,i,j} = \max_{0 \le a < k_h,\; 0 \le b < k_w}
            \tilde x_{m,n,c,\,s_h i + a,\,s_w j + b}

    and backward routes each output gradient to its window's winner, exactly as ``MaxPool2d``
    (the same kernel-cell passes over (M, N, C, OH, OW) views; no parameters).

    Args:
        models: M, the number of stacked models.
        kernel_size, stride, padding: as ``MaxPool2d``'s.

    Shape:
        - Input: ``(M, N, C, H, W)``
        - Output: ``(M, N, C, OH, OW)``
    """

    def __init__(
        self,
        models: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__(kernel_size, stride, padding)
        self.models = check_size("StackedMaxPool2d", "models", models)

    @classmethod
    def stack_of(cls, layers: list[MaxPool2d]) -> StackedMaxPool2d:
        """The stacked layer of ``layers`` (alike: `framework.stack` checked them)."""
        first = layers[0]
        return cls(len(layers), first.kernel_size, first.stride, first.padding)

    def unstack_one(self, index: int) -> MaxPool2d:
        """Model ``index``'s own layer."""
        return MaxPool2d(self.kernel_size, self.stride, self.padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[0] != self.models:
            raise ValueError(
                f"{self!r}: expected input of shape ({self.models}, N, C, H, W), got "
                f"{tuple(x.shape)}"
            )
        return self._pool(x)

    def extra_repr(self) -> str:
        return f"models={self.models}, " + super().extra_repr()
