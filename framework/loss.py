"""Loss criteria. ``loss = criterion(prediction, target)`` caches both; ``criterion.backward()``
returns dL/dprediction (the seed of the model's backward) and frees that cache."""

from __future__ import annotations

import torch

from .module import Module

_REDUCTIONS = ("mean", "sum")


class Loss(Module):
    """Base of the criteria: checks the reduction and the operands (`_check`), caches them.

    The default `_check` is for element-wise criteria (prediction and target of one shape and
    dtype); a criterion with other operands (class indices for CrossEntropyLoss) overrides it.
    """

    _cache = ("prediction", "target")

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction
        self.prediction: torch.Tensor | None = None
        self.target: torch.Tensor | None = None

    def __call__(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.forward(prediction, target)

    def _store(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        self._check(prediction, target)
        self.prediction, self.target = prediction, target

    def _check(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        # torch only warns here and broadcasts (N, 1) against (N,) into (N, N): a silent bug.
        if prediction.shape != target.shape:
            raise ValueError(
                f"{type(self).__name__}: prediction shape {tuple(prediction.shape)} and target "
                f"shape {tuple(target.shape)} differ"
            )
        if prediction.dtype != target.dtype:
            raise TypeError(
                f"{type(self).__name__}: prediction dtype {prediction.dtype} and target dtype "
                f"{target.dtype} differ (convert with target.to(prediction.dtype))"
            )
        if prediction.numel() == 0:
            raise ValueError(f"{type(self).__name__}: got an empty batch (0 elements)")

    def _scale(self, numel: int) -> float:
        return 1.0 / numel if self.reduction == "mean" else 1.0

    def _reduce(self, elementwise: torch.Tensor) -> torch.Tensor:
        return elementwise.mean() if self.reduction == "mean" else elementwise.sum()

    def backward(self) -> torch.Tensor:  # type: ignore[override]
        raise NotImplementedError

    def extra_repr(self) -> str:
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"


class MSELoss(Loss):
    """L = mean((ŷ − y)²); backward: dL/dŷ = 2 (ŷ − y) / N."""

    _cache = ("prediction", "target", "difference")

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.difference: torch.Tensor | None = None

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self._store(prediction, target)
        self.difference = prediction - target  # backward needs it too: computed once
        return self._reduce(self.difference.square())

    def backward(self) -> torch.Tensor:  # type: ignore[override]
        difference = self._saved(self.difference)
        self._release()
        return difference * (2.0 * self._scale(difference.numel()))


class BCELoss(Loss):
    """L = −mean(y · log ŷ + (1 − y) · log(1 − ŷ)), each log clamped at −100 like torch;
    backward: dL/dŷ = (ŷ − y) / max(ŷ (1 − ŷ), 1e-12) / N.

    Predictions and targets must lie in [0, 1] (put a Sigmoid before it)."""

    # torch's floor on ŷ(1 − ŷ) in the backward: its kernel's `constexpr float EPSILON = 1e-12`,
    # i.e. 1e-12 rounded to float32 (in float64 the exact 1e-12 would differ from torch by 4e-9).
    EPSILON = 9.999999960041972e-13

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self._store(prediction, target)
        # The common case costs one reduction over both tensors and one read-back; only a value
        # out of range (or a NaN: the comparisons are False) pays for the per-tensor check.
        low, high = torch.aminmax(torch.stack((prediction, target)))
        if not 0 <= low.item() <= high.item() <= 1:
            self._check_range(prediction, target)
        log_p = prediction.log().clamp_min(-100)
        log_1mp = torch.log1p(-prediction).clamp_min(-100)
        # y · log ŷ + (1 − y) · log(1 − ŷ) is lerp(log(1 − ŷ), log ŷ, y): one kernel, not four.
        return -self._reduce(torch.lerp(log_1mp, log_p, target))

    @staticmethod
    def _check_range(prediction: torch.Tensor, target: torch.Tensor) -> None:
        for name, tensor in (("prediction", prediction), ("target", target)):
            low, high = torch.aminmax(tensor)
            # NaN passes (comparisons are False): a diverged model gets a NaN loss, not an error.
            if low < 0 or high > 1:
                raise ValueError(
                    f"BCELoss: every {name} must lie in [0, 1], got values in "
                    f"[{low.item():.6g}, {high.item():.6g}]"
                    + (" (apply a Sigmoid to the model output)" if name == "prediction" else "")
                )

    def backward(self) -> torch.Tensor:  # type: ignore[override]
        p, target = self._saved(self.prediction), self.target
        self._release()
        denominator = ((1 - p) * p).clamp_min(self.EPSILON)
        return (p - target) / denominator * self._scale(p.numel())


class CrossEntropyLoss(Loss):
    r"""Cross entropy of class logits and class indices, like PyTorch's ``nn.CrossEntropyLoss``:

    .. math::
        \ell_n = -\log \operatorname{softmax}(z_n)_{y_n}
               = \log \sum_c e^{z_{nc} - m_n} - (z_{n y_n} - m_n),
        \quad m_n = \max_c z_{nc}, \qquad L = \tfrac{1}{N} \sum_n \ell_n \text{ (or } \sum_n\text{)}

    (log-sum-exp with the row maximum subtracted: finite for any finite logits).
    Backward: :math:`\partial L / \partial z = (\operatorname{softmax}(z)
    - \operatorname{onehot}(y)) / N` (without the 1/N for ``reduction="sum"``).

    Args:
        reduction: ``"mean"`` (default) or ``"sum"`` over the batch. (PyTorch's ``weight``,
            ``ignore_index``, ``label_smoothing`` and class-probability targets are not
            supported.)

    Shape:
        - Prediction: ``(N, C)`` floating-point logits (no softmax before it).
        - Target: ``(N,)`` int64 class indices in ``[0, C)``.
        - Output: a scalar.
    """

    _cache = ("prediction", "target", "log_probs")

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.log_probs: torch.Tensor | None = None

    def _check(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        if prediction.dim() != 2:
            raise ValueError(
                "CrossEntropyLoss: expected prediction (class logits) of shape (N, C), got "
                f"{tuple(prediction.shape)}"
            )
        if not prediction.is_floating_point():
            raise TypeError(
                f"CrossEntropyLoss: prediction must be floating point, got {prediction.dtype}"
            )
        if target.dtype != torch.int64:
            raise TypeError(
                "CrossEntropyLoss: target must hold class indices of dtype torch.int64, got "
                f"{target.dtype} (convert with target.long(); class probabilities are not "
                "supported)"
            )
        n, classes = prediction.shape
        if target.shape != (n,):
            raise ValueError(
                f"CrossEntropyLoss: target shape {tuple(target.shape)} does not match "
                f"prediction shape {tuple(prediction.shape)}: expected ({n},), one class index "
                "per row"
            )
        if n == 0 or classes == 0:
            raise ValueError(
                f"CrossEntropyLoss: got an empty batch or no classes: prediction shape "
                f"{tuple(prediction.shape)}"
            )
        # One reduction and one read-back: torch checks the same inside its kernel.
        low, high = torch.stack(torch.aminmax(target)).tolist()
        if low < 0 or high >= classes:
            raise ValueError(
                f"CrossEntropyLoss: every target must be a class index in [0, {classes}), got "
                f"values in [{low}, {high}]"
            )

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self._store(prediction, target)
        shifted = prediction - prediction.amax(1, keepdim=True)  # (N, C), each row's max is 0
        self.log_probs = shifted - shifted.exp().sum(1, keepdim=True).log()  # (N, C)
        picked = self.log_probs.gather(1, target.unsqueeze(1))  # (N, 1): log softmax(z_n)[y_n]
        return -self._reduce(picked)

    def backward(self) -> torch.Tensor:  # type: ignore[override]
        log_probs, target = self._saved(self.log_probs), self.target
        self._release()
        grad = log_probs.exp()  # (N, C) softmax
        index = target.unsqueeze(1)  # (N, 1)
        grad.scatter_add_(1, index, grad.new_full(index.shape, -1.0))  # − onehot(y)
        return grad.mul_(self._scale(grad.shape[0]))
