"""The 2-d convolution, as im2col + one matrix product, with the col2im adjoint for dL/dx.

The windows are a strided view (``Tensor.unfold``, no copy) of the input laid out batch
innermost, ``(C, H, W, N)``; one ``reshape`` copy turns them into the ``(C·kh·kw, OH·OW·N)``
patch matrix, whose rows are runs of N contiguous values (CPU copy kernels are slow on short
inner runs, and the batch is the longest one in a small CNN). The convolution is then a single
GEMM, and its result, ``(C_out, OH·OW·N)``, is returned as an ``(N, C_out, OH, OW)`` view of
that memory (no transpose copy): the next layers work in the same batch-innermost layout, and
the next convolution reads it without a transpose. The backward reuses the patch matrix for
dL/dW and adds dL/dpatches back onto the input positions (col2im, `_col2im`).
"""

from __future__ import annotations

import math

import torch

from . import init
from .module import Module, Parameter, check_size


def _pair(owner: str, name: str, value: int | tuple[int, int], minimum: int) -> tuple[int, int]:
    """``value`` as a pair of ints >= minimum (an int means the same for height and width)."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or any(
        isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in pair
    ):
        kind = "positive" if minimum > 0 else "non-negative"
        raise ValueError(f"{owner}: {name} must be a {kind} int or pair of them, got {value!r}")
    return pair  # type: ignore[return-value]


def _output_size(
    layer: Module,
    size: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int] = (0, 0),
) -> tuple[int, int]:
    """⌊(size + 2·padding − kernel) / stride⌋ + 1 per dimension, or a ValueError naming the
    layer if the (padded) input is smaller than the kernel."""
    padded = (size[0] + 2 * padding[0], size[1] + 2 * padding[1])
    if padded[0] < kernel[0] or padded[1] < kernel[1]:
        after = f" (padded: {padded})" if padded != size else ""
        raise ValueError(
            f"{layer!r}: input of spatial size {size}{after} is smaller than the kernel {kernel}"
        )
    return (padded[0] - kernel[0]) // stride[0] + 1, (padded[1] - kernel[1]) // stride[1] + 1


def _col2im(columns: torch.Tensor, size: tuple[int, int], stride: tuple[int, int]) -> torch.Tensor:
    """The adjoint of the unfold: ``columns`` ``(C, kh, kw, OH, OW, N)`` summed back onto a
    ``(C, H, W, N)`` image, each value at the position its window cell was read from.

    Windows that do not overlap take a single copy into the unfolded view of the output.
    Otherwise the sum is separable: first along the width (one strided add per kernel column,
    all kernel rows at once), then along the height (one per kernel row): kh + kw adds, not
    kh · kw.
    """
    c, kh, kw, oh, ow, n = columns.shape
    (h, w), (sh, sw) = size, stride
    image = columns.new_zeros(c, h, w, n)  # (C, H, W, N)
    if sh >= kh and sw >= kw:  # each input position is in at most one window
        image.unfold(1, kh, sh).unfold(2, kw, sw).copy_(columns.permute(0, 3, 4, 5, 1, 2))
        return image
    rows = columns.new_zeros(c, kh, oh, w, n)  # (C, kh, OH, W, N): summed over kernel columns
    for b in range(kw):
        rows[:, :, :, b : b + sw * (ow - 1) + 1 : sw] += columns[:, :, b]  # (C, kh, OH, OW, N)
    for a in range(kh):
        image[:, a : a + sh * (oh - 1) + 1 : sh] += rows[:, a]  # (C, OH, W, N)
    return image


def _grad_input_stride1(
    weight: torch.Tensor, grad: torch.Tensor, size: tuple[int, int], padding: tuple[int, int]
) -> torch.Tensor:
    r"""dL/dx of M stride-1 convolutions without the patch gradient: ``weight`` ``(M, C_out, C,
    kh, kw)``, ``grad`` ``(M, C_out, OH, OW, N)`` (batch innermost), ``size`` = (H, W) of the
    unpadded input; returns ``(M, C, H, W, N)`` (a view).

    With stride 1 every kernel cell (a, b) shifts the whole output by a fixed offset in the
    padded image: flattened as ``(C, Hp·Wp·N)``, output position (i, j) of cell (a, b) reads
    input position ((i + a)·Wp + j + b)·N. So if the gradient is laid out on the padded image's
    width, ``(C_out, OH·Wp·N)`` with zeros in the kw − 1 columns past OW, cell (a, b) adds
    :math:`W_{:,:,a,b}^\top G` onto one contiguous slice of the image, starting at
    (a·Wp + b)·N: kh·kw accumulating products straight into the image. Unlike
    :math:`W^\top G` then col2im, no ``(C·kh·kw, OH·OW·N)`` patch gradient is written and
    read back (at M = 10 in the digits CNN: 5.9 MB, which does not stay in cache). A row's
    last cells spill into the next row only from the zero columns, and the image has
    (kw − 1)·N slack values at its end for the last row's spill. The price: (kw − 1)/Wp of
    the products' work is on those zero columns, and the products have C rows, not C·kh·kw;
    so a single model (its patch gradient stays in cache) keeps W^T G and col2im.
    """
    m, c_out, c, kh, kw = weight.shape
    oh, ow, n = grad.shape[2:]
    (h, w), (ph, pw) = size, padding
    hp, wp = h + 2 * ph, w + 2 * pw
    length = oh * wp * n
    if wp == ow and grad.is_contiguous():  # kw = 1 without padding: already this layout
        wide = grad.view(m, c_out, length)
    else:
        wide = grad.new_empty(m, c_out, oh, wp, n)
        wide[:, :, :, ow:].zero_()  # the kw − 1 columns past OW
        wide[:, :, :, :ow] = grad
        wide = wide.view(m, c_out, length)
    image = grad.new_empty(m, c, hp * wp * n + (kw - 1) * n)
    image[:, :, length:].zero_()  # cell (0, 0) writes the rest (beta = 0: no zeros read)
    cells = weight.permute(3, 4, 0, 2, 1).contiguous()  # (kh, kw, M, C, C_out): Wᵀ per cell
    for a in range(kh):
        for b in range(kw):
            start, beta = (a * wp + b) * n, 0 if a == b == 0 else 1
            image[:, :, start : start + length].baddbmm_(cells[a, b], wide, beta=beta)
    image = image[:, :, : hp * wp * n].view(m, c, hp, wp, n)
    return image[:, :, ph : ph + h, pw : pw + w]


class Conv2d(Module):
    r"""2-d cross-correlation (PyTorch's ``nn.Conv2d``, ``groups=1``, ``dilation=1``, zero
    padding):

    .. math::
        y_{n,o,i,j} = b_o + \sum_{c,a,b'} W_{o,c,a,b'}\, \tilde x_{n,c,\,s_h i + a,\,s_w j + b'}

    with :math:`\tilde x` the input zero-padded by ``padding``. As matrices, with :math:`X` the
    ``(C·kh·kw, OH·OW·N)`` patch matrix (im2col), :math:`W` as ``(C_out, C·kh·kw)`` and
    :math:`G` the output gradient as ``(C_out, OH·OW·N)``: :math:`Y = W X + b`, so

    :math:`\partial L/\partial W \mathrel{+}= G X^\top`,
    :math:`\partial L/\partial b \mathrel{+}= \sum_{n,i,j} g_{n,:,i,j}`,
    :math:`\partial L/\partial x = \operatorname{col2im}(W^\top G)` (each patch's gradient added
    back onto the input positions it was read from, the padding dropped).

    Args:
        in_channels: channels C of the input.
        out_channels: channels C_out of the output.
        kernel_size: ``kh`` = ``kw`` (an int) or ``(kh, kw)``.
        stride: step between windows, int or pair (default 1).
        padding: zeros added on both sides of each spatial dimension, int or pair (default 0).
        bias: if ``False``, the layer learns no additive bias.
        device, dtype: where and in what precision the parameters live (torch's defaults).

    Shape:
        - Input: ``(N, C, H, W)``
        - Output: ``(N, C_out, OH, OW)`` with ``OH = ⌊(H + 2·padding[0] − kh) / stride[0]⌋ + 1``
          (and likewise OW), a view of memory laid out ``(C_out, OH, OW, N)`` (same values
          as torch's, other strides; ``.contiguous()`` if that matters).

    Attributes:
        weight: ``(C_out, C, kh, kw)``, initialised like PyTorch's ``nn.Conv2d``:
            kaiming_uniform(a=√5), i.e. U(−1/√fan_in, 1/√fan_in) with fan_in = C·kh·kw.
        bias: ``(C_out,)``, U(−1/√fan_in, 1/√fan_in).
    """

    _cache = ("columns", "input_shape")

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = check_size("Conv2d", "in_channels", in_channels)
        self.out_channels = check_size("Conv2d", "out_channels", out_channels)
        self.kernel_size = _pair("Conv2d", "kernel_size", kernel_size, 1)
        self.stride = _pair("Conv2d", "stride", stride, 1)
        self.padding = _pair("Conv2d", "padding", padding, 0)
        factory = {"device": device, "dtype": dtype}
        self.weight = Parameter(
            torch.empty(out_channels, in_channels, *self.kernel_size, **factory)
        )
        self.bias = Parameter(torch.empty(out_channels, **factory)) if bias else None
        self.columns: torch.Tensor | None = None
        self.input_shape: torch.Size | None = None
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """PyTorch's ``nn.Conv2d`` default initialisation (same draws, same order)."""
        init.kaiming_uniform_(self.weight.data, a=math.sqrt(5), generator=generator)
        if self.bias is not None:
            fan_in = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
            bound = 1 / math.sqrt(fan_in)
            init.uniform_(self.bias.data, -bound, bound, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.data
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{self!r}: expected input of shape (N, {self.in_channels}, H, W), got "
                f"{tuple(x.shape)}"
            )
        if x.dtype != weight.dtype:
            raise TypeError(
                f"{self!r}: input dtype {x.dtype} does not match weight dtype {weight.dtype}"
            )
        n, c, h, w = x.shape
        (kh, kw), (ph, pw) = self.kernel_size, self.padding
        oh, ow = _output_size(self, (h, w), self.kernel_size, self.stride, self.padding)
        image = x.permute(1, 2, 3, 0)  # (C, H, W, N) view: batch innermost
        if ph or pw:
            padded = x.new_zeros(c, h + 2 * ph, w + 2 * pw, n)  # (C, Hp, Wp, N)
            padded[:, ph : ph + h, pw : pw + w] = image
            image = padded
        windows = image.unfold(1, kh, self.stride[0]).unfold(2, kw, self.stride[1])
        # windows: (C, OH, OW, N, kh, kw), a view; the reshape is the one im2col copy.
        columns = windows.permute(0, 4, 5, 1, 2, 3).reshape(c * kh * kw, oh * ow * n)
        self.columns, self.input_shape = columns, x.shape  # columns: (C·kh·kw, OH·OW·N)
        weight = weight.reshape(self.out_channels, -1)  # (C_out, C·kh·kw)
        if self.bias is None:
            out = weight.mm(columns)  # (C_out, OH·OW·N)
        else:
            out = torch.addmm(self.bias.data.unsqueeze(1), weight, columns)  # (C_out, OH·OW·N)
        return out.view(self.out_channels, oh, ow, n).permute(3, 0, 1, 2)  # (N, C_out, OH, OW)

    def _gradients(self, grad_output: torch.Tensor) -> torch.Tensor:
        """Accumulate dL/dW and dL/db; return G as (C_out, OH·OW·N)."""
        columns = self._saved(self.columns)
        n, _, h, w = self.input_shape
        oh, ow = _output_size(self, (h, w), self.kernel_size, self.stride, self.padding)
        if grad_output.shape != (n, self.out_channels, oh, ow):
            raise ValueError(
                f"{self!r}: expected grad_output of shape {(n, self.out_channels, oh, ow)} (its "
                f"forward output), got {tuple(grad_output.shape)}"
            )
        # (C_out, OH·OW·N): a free view when grad_output has our output's batch-inner layout.
        grad = grad_output.permute(1, 2, 3, 0).reshape(self.out_channels, -1)
        # dL/dW = G Xᵀ, computed transposed (X Gᵀ: several times faster in MKL for these
        # shapes) and added in place into .grad: accumulates like torch, keeps optimizer views.
        grad_weight = columns.mm(grad.t())  # (C·kh·kw, C_out)
        self.weight.grad.view(self.out_channels, -1).add_(grad_weight.t())
        if self.bias is not None:
            self.bias.grad.add_(grad.sum(1))  # (C_out,)
        return grad

    def _accumulate(self, grad_output: torch.Tensor) -> None:
        """The parameters' part of backward (all of it when dL/dx is not wanted: a model's first
        layer, whose dL/dx Sequential does not ask for)."""
        self._gradients(grad_output)
        self._release()

    def backward(self, grad_output: torch.Tensor) -> torch.Tensor:
        grad = self._gradients(grad_output)
        n, c, h, w = self.input_shape
        self._release()
        (kh, kw), (ph, pw) = self.kernel_size, self.padding
        oh, ow = grad_output.shape[2:]
        # W^T G then col2im: one model's patch gradient stays in cache, and one product with
        # C·kh·kw rows beats kh·kw with C rows each (_grad_input_stride1, for a stack: 10% slower
        # here, measured on the digits CNN).
        weight = self.weight.data.reshape(self.out_channels, -1)  # (C_out, C·kh·kw)
        grad_columns = weight.t().mm(grad).view(c, kh, kw, oh, ow, n)  # dL/dcolumns
        grad_padded = _col2im(grad_columns, (h + 2 * ph, w + 2 * pw), self.stride)
        grad_input = grad_padded[:, ph : ph + h, pw : pw + w]  # (C, H, W, N)
        return grad_input.permute(3, 0, 1, 2)  # (N, C, H, W)

    def extra_repr(self) -> str:
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        return text if self.bias is not None else text + ", bias=False"


class StackedConv2d(Module):
    r"""M ``Conv2d`` layers of one configuration at once (`framework.stack`), each with its own
    weights: for every model m,

    .. math::
        y_{m,n,o,i,j} = b_{m,o} + \sum_{c,a,b'} W_{m,o,c,a,b'}\,
            \tilde x_{m,n,c,\,s_h i + a,\,s_w j + b'}

    As matrices, one batched product (``torch.bmm``) over the M models' patch matrices
    :math:`X_m` ``(C·kh·kw, OH·OW·N)`` (im2col, each model's windows as ``Conv2d`` takes them):
    :math:`Y_m = W_m X_m + b_m`, and backward :math:`\partial L/\partial W_m \mathrel{+}= G_m
    X_m^\top`, :math:`\partial L/\partial b_m \mathrel{+}= \sum_{n,i,j} g_{m,n,:,i,j}`,
    :math:`\partial L/\partial x_m = \operatorname{col2im}(W_m^\top G_m)` (the M models' columns
    summed back as M·C channels of one image).

    Args:
        models: M, the number of stacked models.
        in_channels, out_channels, kernel_size, stride, padding, bias, device, dtype: as
            ``Conv2d``'s, for each model.

    Shape:
        - Input: ``(M, N, C, H, W)``
        - Output: ``(M, N, C_out, OH, OW)``, a view of memory laid out ``(M, C_out, OH, OW, N)``
          (batch innermost, as ``Conv2d``'s output; the next stacked convolution reads it
          without a copy).

    Attributes:
        weight: ``(M, C_out, C, kh, kw)``; bias: ``(M, C_out)``. Initialised as M ``Conv2d``
            layers created one after another (the same draws, in the same order).
    """

    _cache = ("columns", "input_shape")

    def __init__(
        self,
        models: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        name = "StackedConv2d"
        self.models = check_size(name, "models", models)
        self.in_channels = check_size(name, "in_channels", in_channels)
        self.out_channels = check_size(name, "out_channels", out_channels)
        self.kernel_size = _pair(name, "kernel_size", kernel_size, 1)
        self.stride = _pair(name, "stride", stride, 1)
        self.padding = _pair(name, "padding", padding, 0)
        factory = {"device": device, "dtype": dtype}
        self.weight = Parameter(
            torch.empty(models, out_channels, in_channels, *self.kernel_size, **factory),
            stacked=True,
        )
        self.bias = (
            Parameter(torch.empty(models, out_channels, **factory), stacked=True) if bias else None
        )
        self.columns: torch.Tensor | None = None
        self.input_shape: torch.Size | None = None
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Each model as ``Conv2d.reset_parameters``, model after model."""
        fan_in = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        bound = 1 / math.sqrt(fan_in)
        for index in range(self.models):
            init.kaiming_uniform_(self.weight.data[index], a=math.sqrt(5), generator=generator)
            if self.bias is not None:
                init.uniform_(self.bias.data[index], -bound, bound, generator=generator)

    @classmethod
    def stack_of(cls, layers: list[Conv2d]) -> StackedConv2d:
        """An (uninitialised-equivalent) stacked layer for ``layers`` (alike: `framework.stack`
        checked them and copies their parameters in)."""
        first = layers[0]
        weight = first.weight.data
        return cls(
            len(layers),
            first.in_channels,
            first.out_channels,
            first.kernel_size,
            first.stride,
            first.padding,
            bias=first.bias is not None,
            device=weight.device,
            dtype=weight.dtype,
        )

    def unstack_one(self, index: int) -> Conv2d:
        """A ``Conv2d`` of this configuration (`framework.unstack` copies slice ``index`` in)."""
        weight = self.weight.data
        return Conv2d(
            self.in_channels,
            self.out_channels,
            self.kernel_size,
            self.stride,
            self.padding,
            bias=self.bias is not None,
            device=weight.device,
            dtype=weight.dtype,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.data
        if x.dim() != 5 or x.shape[0] != self.models or x.shape[2] != self.in_channels:
            raise ValueError(
                f"{self!r}: expected input of shape ({self.models}, N, {self.in_channels}, H, W) "
                f"(models, batch, channels, height, width), got {tuple(x.shape)}"
            )
        if x.dtype != weight.dtype:
            raise TypeError(
                f"{self!r}: input dtype {x.dtype} does not match weight dtype {weight.dtype}"
            )
        m, n, c, h, w = x.shape
        (kh, kw), (ph, pw) = self.kernel_size, self.padding
        oh, ow = _output_size(self, (h, w), self.kernel_size, self.stride, self.padding)
        image = x.permute(0, 2, 3, 4, 1)  # (M, C, H, W, N) view: batch innermost
        if ph or pw:
            padded = x.new_zeros(m, c, h + 2 * ph, w + 2 * pw, n)  # (M, C, Hp, Wp, N)
            padded[:, :, ph : ph + h, pw : pw + w] = image
            image = padded
        windows = image.unfold(2, kh, self.stride[0]).unfold(3, kw, self.stride[1])
        # windows: (M, C, OH, OW, N, kh, kw), a view; the reshape is the one im2col copy.
        columns = windows.permute(0, 1, 5, 6, 2, 3, 4).reshape(m, c * kh * kw, oh * ow * n)
        self.columns, self.input_shape = columns, x.shape
        weight = weight.reshape(m, self.out_channels, -1)  # (M, C_out, C·kh·kw)
        if self.bias is None:
            out = torch.bmm(weight, columns)  # (M, C_out, OH·OW·N)
        else:
            out = torch.baddbmm(self.bias.data.unsqueeze(2), weight, columns)
        return out.view(m, self.out_channels, oh, ow, n).permute(0, 4, 1, 2, 3)

    def _gradients(self, grad_output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Accumulate dL/dW and dL/db; return (the patch matrices, G as (M, C_out, OH·OW·N))."""
        columns = self._saved(self.columns)
        m, n, _, h, w = self.input_shape
        oh, ow = _output_size(self, (h, w), self.kernel_size, self.stride, self.padding)
        expected = (m, n, self.out_channels, oh, ow)
        if grad_output.shape != expected:
            raise ValueError(
                f"{self!r}: expected grad_output of shape {expected} (its forward output), got "
                f"{tuple(grad_output.shape)}"
            )
        grad = grad_output.permute(0, 2, 3, 4, 1).reshape(m, self.out_channels, -1)
        # dL/dWᵀ = X Gᵀ (the faster product, as in Conv2d), added transposed into .grad.
        grad_weight = torch.bmm(columns, grad.transpose(1, 2))  # (M, C·kh·kw, C_out)
        self.weight.grad.view(m, self.out_channels, -1).add_(grad_weight.transpose(1, 2))
        if self.bias is not None:
            self.bias.grad.add_(grad.sum(2))  # (M, C_out)
        return columns, grad

    def _accumulate(self, grad_output: torch.Tensor) -> None:
        """The parameters' part of backward (all of it when dL/dx is not wanted)."""
        self._gradients(grad_output)
        self._release()

    def backward(self, grad_output: torch.Tensor) -> torch.Tensor:
        _, grad = self._gradients(grad_output)
        m, n, c, h, w = self.input_shape
        self._release()
        (kh, kw), (ph, pw) = self.kernel_size, self.padding
        oh, ow = grad_output.shape[3:]
        if self.stride == (1, 1):  # no patch gradient (see _grad_input_stride1)
            grad = grad.view(m, self.out_channels, oh, ow, n)
            grad_input = _grad_input_stride1(self.weight.data, grad, (h, w), self.padding)
            return grad_input.permute(0, 4, 1, 2, 3)  # (M, N, C, H, W)
        weight = self.weight.data.reshape(m, self.out_channels, -1)
        grad_columns = torch.bmm(weight.transpose(1, 2), grad)  # (M, C·kh·kw, OH·OW·N)
        grad_columns = grad_columns.view(m * c, kh, kw, oh, ow, n)
        grad_padded = _col2im(grad_columns, (h + 2 * ph, w + 2 * pw), self.stride)
        grad_padded = grad_padded.view(m, c, h + 2 * ph, w + 2 * pw, n)
        grad_input = grad_padded[:, :, ph : ph + h, pw : pw + w]  # (M, C, H, W, N)
        return grad_input.permute(0, 4, 1, 2, 3)  # (M, N, C, H, W)

    def extra_repr(self) -> str:
        conv = Conv2d.extra_repr(self)  # type: ignore[arg-type]
        return f"models={self.models}, {conv}"
