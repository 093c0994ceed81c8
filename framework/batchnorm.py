"""Batch normalisation over the channel dimension, with running statistics as buffers."""

from __future__ import annotations

import math

import torch

from . import init
from .module import Buffer, Module, Parameter, check_number, check_size

# Below this many values the batched dot product's views and dispatch (~8 µs) cost more than
# the product tensor it saves (one digits CNN's feature maps, 65k values: 18 µs vs 12 µs for
# a·b then sum; a stack of ten, 655k: 0.23 ms vs 0.44 ms).
_DOT_MIN = 1 << 17


def _rows(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor | None:
    """``x`` as a ``(K, 1, n)`` view, one row of n values per channel (per model and channel in a
    stack: the K positions of the dimensions not in ``dims``, in order), when its memory is laid
    out with the batch (``dims[0]``) innermost after the channels, as a convolution's output
    is; None otherwise (a cheap test: it runs on every step of every model)."""
    moved = x.movedim(dims[0], -1)
    if not moved.is_contiguous():
        return None
    count = math.prod(x.shape[d] for d in dims)
    return moved.view(-1, 1, count)


def _sum_of_products(a: torch.Tensor, b: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """Σ a·b over ``dims`` (a and b of one shape): per channel, the shape of the other
    dimensions. When both hold each channel's values as one run, batch innermost, it is one
    batched dot product (``torch.bmm`` of (K, 1, n) by (K, n, 1)): no a·b tensor written and
    read back (2x faster for a stacked CNN's feature maps); else, or for fewer than
    `_DOT_MIN` values, ``(a * b).sum(dims)``."""
    if a.numel() < _DOT_MIN:
        return (a * b).sum(dims)
    rows_a, rows_b = _rows(a, dims), _rows(b, dims)
    if rows_a is None or rows_b is None:
        return (a * b).sum(dims)
    kept = [size for d, size in enumerate(a.shape) if d not in dims]
    return torch.bmm(rows_a, rows_b.transpose(1, 2)).view(kept)


class _BatchNorm(Module):
    r"""Shared by BatchNorm1d and BatchNorm2d: per channel c, over every other dimension,

    .. math::
        y = \gamma_c\, \hat x + \beta_c, \qquad \hat x = \frac{x - \mu_c}{\sqrt{\sigma^2_c +
        \epsilon}}

    In training mode (or without running statistics) :math:`\mu, \sigma^2` are the batch mean
    and *biased* variance over the :math:`n` values of each channel, and the running statistics
    are updated as torch does: :math:`r_\mu \leftarrow (1 - m) r_\mu + m \mu`,
    :math:`r_{\sigma^2} \leftarrow (1 - m) r_{\sigma^2} + m \sigma^2 \frac{n}{n-1}` (the
    *unbiased* variance), ``num_batches_tracked += 1`` (with ``momentum=None``, m = 1 /
    num_batches_tracked: a cumulative average). In eval mode :math:`\mu, \sigma^2` are the
    running statistics.

    Backward, with :math:`g = \partial L/\partial y` and means over each channel's n values:
    :math:`\partial L/\partial \gamma \mathrel{+}= \sum g \hat x`,
    :math:`\partial L/\partial \beta \mathrel{+}= \sum g`, and

    - batch statistics: :math:`\partial L/\partial x = \frac{\gamma}{\sqrt{\sigma^2 + \epsilon}}
      \left(g - \overline{g} - \hat x\, \overline{g \hat x}\right)`
      (the statistics depend on x too);
    - running statistics: :math:`\partial L/\partial x = \frac{\gamma}{\sqrt{r_{\sigma^2} +
      \epsilon}}\, g` (an affine map).
    """

    _cache = ("centered", "inv_std")
    # The output and dL/dx are new tensors, kept nowhere (x − μ is, but it is neither): a ReLU
    # after the layer works in place (framework.module's contract, 2 and 3).
    _fresh_output = _fresh_grad = True
    _DIMS: tuple[int, ...] = ()  # accepted input ranks
    models: int | None = None  # M for a stack (every tensor with a leading model dimension)

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.num_features = check_size(name, "num_features", num_features)
        # ε > 0: torch refuses ε = 0 when training (1/√σ² is inf for a constant channel); here
        # at construction, where it is cheap, not in a forward.
        self.eps = check_number(name, "eps", eps, 0.0, low_open=True)
        self.momentum = None if momentum is None else check_number(name, "momentum", momentum, 0, 1)
        self.affine = affine
        self.track_running_stats = track_running_stats
        factory = {"device": device, "dtype": dtype}
        lead = () if self.models is None else (self.models,)  # a stack's leading dimension
        stacked = self.models is not None
        # torch's order: parameters weight, bias; buffers running_mean, running_var,
        # num_batches_tracked (the state_dict lists a module's parameters, then its buffers).
        shape = (*lead, num_features)
        self.weight = Parameter(torch.empty(shape, **factory), stacked=stacked) if affine else None
        self.bias = (
            Parameter(torch.empty(shape, **factory), stacked=stacked) if affine and bias else None
        )
        if track_running_stats:
            self.running_mean = Buffer(torch.zeros(shape, **factory))
            self.running_var = Buffer(torch.ones(shape, **factory))
            self.num_batches_tracked = Buffer(
                torch.zeros(lead, dtype=torch.long, device=device)  # int64, never cast by to()
            )
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None
        self.centered: torch.Tensor | None = None  # x − μ
        self.inv_std: torch.Tensor | None = None  # (C,) 1 / √(σ² + ε)
        self.batch_stats = True  # whether that forward used the batch's statistics
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        """running_mean = 0, running_var = 1, num_batches_tracked = 0."""
        if self.track_running_stats:
            self.running_mean.data.zero_()
            self.running_var.data.fill_(1)
            self.num_batches_tracked.data.zero_()

    def reset_parameters(self) -> None:
        """Running statistics reset; weight = 1, bias = 0 (torch's initialisation)."""
        self.reset_running_stats()
        if self.weight is not None:
            self.weight.data.fill_(1)
        if self.bias is not None:
            init.zeros_(self.bias.data)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() not in self._DIMS or x.shape[1] != self.num_features:
            c = self.num_features
            shapes = " or ".join(
                f"(N, {c}{', L' if d == 3 else ''}{', H, W' if d == 4 else ''})" for d in self._DIMS
            )
            raise ValueError(f"{self!r}: expected input of shape {shapes}, got {tuple(x.shape)}")
        reference = self.weight if self.affine else self.running_mean
        if reference is not None and x.dtype != reference.dtype:
            raise TypeError(
                f"{self!r}: input dtype {x.dtype} does not match the layer's dtype "
                f"{reference.dtype}"
            )

    def _axes(self, x: torch.Tensor) -> tuple[tuple[int, ...], tuple[int, ...], int]:
        """(the dimensions of x a channel's statistics are taken over, the shape its (C,)
        values take to broadcast against x, n: the values per channel)."""
        channels = self.num_features
        dims = (0, *range(2, x.dim()))  # every dimension but the channels
        return dims, (channels,) + (1,) * (x.dim() - 2), x.numel() // channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        dims, shape, count = self._axes(x)
        batch_stats = self.training or not self.track_running_stats
        if batch_stats:
            if count <= 1:
                raise ValueError(
                    f"{self!r}: expected more than 1 value per channel when training, got "
                    f"input of shape {tuple(x.shape)}"
                )
            # Two passes, like torch's kernel (torch.var_mean is several times slower on CPU).
            mean = x.sum(dims).div_(count)  # (C,)
            centered = x - mean.view(shape)  # x's shape
            var = _sum_of_products(centered, centered, dims).div_(count)  # (C,) biased variance
            if self.training and self.track_running_stats:
                self._update_running_stats(mean, var, count)
        else:
            mean, var = self.running_mean.data, self.running_var.data
            centered = x - mean.view(shape)
        inv_std = (var + self.eps).rsqrt_()  # (C,) 1 / √(σ² + ε)
        self.centered, self.inv_std, self.batch_stats = centered, inv_std, batch_stats
        # y = (x − μ) · γ/√(σ² + ε) + β: one pass over x (x̂ itself is never materialised).
        scale = inv_std if self.weight is None else self.weight.data * inv_std  # (C,)
        y = centered * scale.view(shape)
        # (mul then add_: torch.addcmul with two broadcast (C, 1, 1) operands is 2x slower.)
        return y if self.bias is None else y.add_(self.bias.data.view(shape))

    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, count: int) -> None:
        self.num_batches_tracked.data.add_(1)
        unbiased = count / (count - 1)  # the running variance is the unbiased one: σ² · n/(n − 1)
        if self.momentum is None:
            # Cumulative moving average, m = 1 / num_batches_tracked: computed on the device
            # (reading the counter back would wait for it every step).
            factor = self.num_batches_tracked.data.to(mean.dtype).reciprocal()  # 0-dim or (M,)
            factor = factor.view(*factor.shape, *[1] * (mean.dim() - factor.dim()))
            self.running_mean.data.mul_(1 - factor).add_(mean * factor)
            self.running_var.data.mul_(1 - factor).add_(var * (factor * unbiased))
            return
        factor = self.momentum
        self.running_mean.data.mul_(1 - factor).add_(mean, alpha=factor)
        self.running_var.data.mul_(1 - factor).add_(var, alpha=factor * count / (count - 1))

    def backward(self, grad_output: torch.Tensor) -> torch.Tensor:
        centered = self._saved(self.centered, grad_output)
        inv_std, batch_stats = self.inv_std, self.batch_stats
        self._release()
        dims, shape, count = self._axes(centered)
        scale = inv_std if self.weight is None else self.weight.data * inv_std  # (C,) γ/σ
        if self.weight is not None or batch_stats:
            # Σ g x̂ = (Σ g (x − μ)) / σ: the division after the reduction, on C values.
            sum_g_xhat = _sum_of_products(grad_output, centered, dims).mul_(inv_std)  # (C,)
        if self.bias is not None or batch_stats:
            sum_g = grad_output.sum(dims)  # (C,) Σ g
        if self.weight is not None:
            self.weight.grad.add_(sum_g_xhat)
        if self.bias is not None:
            self.bias.grad.add_(sum_g)
        if not batch_stats:
            return grad_output * scale.view(shape)
        # γ/σ · (g − mean(g) − x̂ · mean(g x̂)) as g · a + ((x − μ) · b + c): two passes over x.
        b = (sum_g_xhat * scale * inv_std).div_(-count)  # (C,)
        c = (sum_g * scale).div_(-count)  # (C,)
        grad_input = (centered * b.view(shape)).add_(c.view(shape))
        return grad_input.addcmul_(grad_output, scale.view(shape))

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, bias={self.bias is not None}, "
            f"track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    r"""Batch normalisation of ``(N, C)`` or ``(N, C, L)`` inputs over N (and L), like PyTorch's
    ``nn.BatchNorm1d``:

    .. math::
        y = \gamma_c \frac{x - \mu_c}{\sqrt{\sigma^2_c + \epsilon}} + \beta_c

    with the batch mean and biased variance of channel c in training mode (running statistics
    updated as r ← (1 − m) r + m · stat, the variance's unbiased), the running statistics in
    eval mode. Backward (batch statistics, x̂ the normalised input, means per channel):
    :math:`\partial L/\partial x = \frac{\gamma}{\sqrt{\sigma^2 + \epsilon}}(g - \overline{g}
    - \hat x\,\overline{g \hat x})`; (running statistics) :math:`\frac{\gamma}{\sqrt{r_{\sigma^2}
    + \epsilon}}\, g`; :math:`\partial L/\partial\gamma \mathrel{+}= \sum g\hat x`,
    :math:`\partial L/\partial\beta \mathrel{+}= \sum g`. (Details: ``_BatchNorm``.)

    Args:
        num_features: C, the number of channels (features).
        eps: ε > 0 added to the variance (default 1e-5).
        momentum: m in [0, 1] for the running statistics (default 0.1), or ``None`` for a
            cumulative average.
        affine: learn γ (``weight``, ones) and β (``bias``, zeros) per channel (default True).
        track_running_stats: keep the buffers ``running_mean`` (zeros), ``running_var`` (ones)
            and ``num_batches_tracked`` (int64) and use them in eval mode (default True); if
            False, batch statistics are used in both modes.
        device, dtype: where and in what precision the parameters and buffers live.
        bias: with ``affine``, whether to learn β too (keyword-only, default True, like PyTorch's
            keyword-only ``bias`` in recent versions).

    Shape:
        - Input: ``(N, C)`` or ``(N, C, L)``
        - Output: the input's shape.
    """

    _DIMS = (2, 3)


class BatchNorm2d(_BatchNorm):
    r"""Batch normalisation of ``(N, C, H, W)`` inputs over N, H and W, like PyTorch's
    ``nn.BatchNorm2d``: the formula, backward and arguments of `BatchNorm1d`, per channel c,

    .. math::
        y = \gamma_c \frac{x - \mu_c}{\sqrt{\sigma^2_c + \epsilon}} + \beta_c

    with the statistics taken over the batch and both spatial dimensions.

    Args:
        num_features: C, the number of channels.
        eps, momentum, affine, track_running_stats, device, dtype, bias: as `BatchNorm1d`'s.

    Shape:
        - Input: ``(N, C, H, W)``
        - Output: the input's shape.
    """

    _DIMS = (4,)


class _StackedBatchNorm(_BatchNorm):
    r"""M batch normalisations of one configuration at once (`framework.stack`), each with its
    own γ, β and running statistics: for model m and channel c, over the rest of model m's batch,

    .. math::
        y_m = \gamma_{m,c} \frac{x_m - \mu_{m,c}}{\sqrt{\sigma^2_{m,c} + \epsilon}} +
        \beta_{m,c}

    (training: model m's batch statistics, its running statistics updated as ``_BatchNorm``'s;
    eval: its running statistics), and ``_BatchNorm``'s backward per model. Parameters and
    buffers have a leading model dimension: ``weight``, ``bias``, ``running_mean``,
    ``running_var`` ``(M, C)``, ``num_batches_tracked`` ``(M,)``.
    """

    def __init__(
        self,
        models: int,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        bias: bool = True,
    ) -> None:
        self.models = check_size(type(self).__name__, "models", models)
        super().__init__(
            num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias
        )

    _SINGLE: type[_BatchNorm] = _BatchNorm

    @classmethod
    def stack_of(cls, layers: list[_BatchNorm]) -> _StackedBatchNorm:
        """A stacked layer for ``layers`` (alike: `framework.stack` checked them and copies
        their parameters and buffers in)."""
        first = layers[0]
        state = first.weight if first.weight is not None else first.running_mean
        return cls(
            len(layers),
            first.num_features,
            first.eps,
            first.momentum,
            first.affine,
            first.track_running_stats,
            device=None if state is None else state.device,
            dtype=None if state is None else state.dtype,
            bias=first.bias is not None or not first.affine,
        )

    def unstack_one(self, index: int) -> _BatchNorm:
        """A single layer of this configuration (`framework.unstack` copies slice ``index``)."""
        state = self.weight if self.weight is not None else self.running_mean
        return self._SINGLE(
            self.num_features,
            self.eps,
            self.momentum,
            self.affine,
            self.track_running_stats,
            device=None if state is None else state.device,
            dtype=None if state is None else state.dtype,
            bias=self.bias is not None or not self.affine,
        )

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() - 1 not in self._DIMS or x.shape[0] != self.models:
            raise ValueError(
                f"{self!r}: expected input of shape ({self.models}, N, {self.num_features}, ...) "
                f"with {' or '.join(str(d + 1) for d in self._DIMS)} dimensions, got "
                f"{tuple(x.shape)}"
            )
        super()._check_input(x[0])

    def _axes(self, x: torch.Tensor) -> tuple[tuple[int, ...], tuple[int, ...], int]:
        m, channels = self.models, self.num_features
        dims = (1, *range(3, x.dim()))  # every dimension but the models' and the channels'
        return dims, (m, 1, channels) + (1,) * (x.dim() - 3), x.numel() // (m * channels)

    def extra_repr(self) -> str:
        return f"models={self.models}, " + super().extra_repr()


class StackedBatchNorm1d(_StackedBatchNorm):
    r"""M ``BatchNorm1d`` layers at once: for each model m, on its ``(N, C)`` or ``(N, C, L)``
    slice,

    .. math::
        y_m = \gamma_{m,c} \frac{x_m - \mu_{m,c}}{\sqrt{\sigma^2_{m,c} + \epsilon}} +
        \beta_{m,c}

    with model m's own statistics and backward (``_StackedBatchNorm``, ``BatchNorm1d``).

    Args:
        models: M, the number of stacked models.
        num_features, eps, momentum, affine, track_running_stats, device, dtype, bias: as
            ``BatchNorm1d``'s, for each model.

    Shape:
        - Input: ``(M, N, C)`` or ``(M, N, C, L)``
        - Output: the input's shape.
    """

    _DIMS = (2, 3)
    _SINGLE = BatchNorm1d


class StackedBatchNorm2d(_StackedBatchNorm):
    r"""M ``BatchNorm2d`` layers at once: for each model m, on its ``(N, C, H, W)`` slice,

    .. math::
        y_m = \gamma_{m,c} \frac{x_m - \mu_{m,c}}{\sqrt{\sigma^2_{m,c} + \epsilon}} +
        \beta_{m,c}

    with model m's own statistics and backward (``_StackedBatchNorm``, ``BatchNorm2d``).

    Args:
        models: M, the number of stacked models.
        num_features, eps, momentum, affine, track_running_stats, device, dtype, bias: as
            ``BatchNorm2d``'s, for each model.

    Shape:
        - Input: ``(M, N, C, H, W)``
        - Output: the input's shape.
    """

    _DIMS = (4,)
    _SINGLE = BatchNorm2d
