"""Loss criteria. ``loss = criterion(prediction, target)`` caches both; ``criterion.backward()``
returns dL/dprediction (the seed of the model's backward) and frees that cache.

``StackedLoss(criterion)`` is the same criterion for M stacked models (`framework.stack`): one
loss per model, shape ``(M,)``, and each model's own gradient.

No criterion reads a value back to the host in a training step (on a GPU that would wait for
the device every step): the value checks torch's kernels make for free (BCE's [0, 1] domain,
class indices in range) are opt-in, ``check=True``, or a call to ``validate`` where a read-back
is cheap (evaluation).
"""

from __future__ import annotations

import copy

import torch

from .module import Module

_REDUCTIONS = ("mean", "sum")


class Loss(Module):
    """Base of the criteria: checks the reduction and the operands (`_check`), caches them.

    The default `_check` is for element-wise criteria (prediction and target of one shape and
    dtype); a criterion with other operands (class indices for CrossEntropyLoss) overrides it.
    A stacked criterion (made by `StackedLoss`) reduces over every dimension but the first, the
    model's, giving one loss per model.
    """

    _cache = ("prediction", "target")
    _stacked = False  # set on the copy a StackedLoss holds

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction
        self.prediction: torch.Tensor | None = None
        self.target: torch.Tensor | None = None

    def __call__(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``forward(input, target)``: the prediction under torch's name, ``input``, so that
        ``criterion(input=..., target=...)`` works as for torch's criteria."""
        return self.forward(input, target)

    @property
    def _name(self) -> str:
        return type(self).__name__ + (" (stacked)" if self._stacked else "")

    def _store(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        self._check(prediction, target)
        self.prediction, self.target = prediction, target

    def _check(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        # torch only warns here and broadcasts (N, 1) against (N,) into (N, N): a silent bug.
        if self._stacked:
            if prediction.dim() < 2 or target.shape not in (prediction.shape, prediction.shape[1:]):
                raise ValueError(
                    f"{self._name}: expected a prediction of shape (M, B, …) and a target of "
                    f"the same shape (one per model) or of its shape without M (the same for "
                    f"every model); got prediction {tuple(prediction.shape)} and target "
                    f"{tuple(target.shape)}"
                )
        elif prediction.shape != target.shape:
            raise ValueError(
                f"{self._name}: prediction shape {tuple(prediction.shape)} and target "
                f"shape {tuple(target.shape)} differ"
            )
        if prediction.dtype != target.dtype:
            raise TypeError(
                f"{self._name}: prediction dtype {prediction.dtype} and target dtype "
                f"{target.dtype} differ (convert with target.to(prediction.dtype))"
            )
        if prediction.numel() == 0:
            raise ValueError(f"{self._name}: got an empty batch (0 elements)")

    def _scale(self, per_element: torch.Tensor) -> float:
        """The factor of the reduction's backward: 1/n for a mean over n values (each model's
        own n when stacked), 1 for a sum."""
        if self.reduction == "sum":
            return 1.0
        numel = per_element.numel()
        return per_element.shape[0] / numel if self._stacked else 1.0 / numel

    def _reduce(self, elementwise: torch.Tensor) -> torch.Tensor:
        if self._stacked:  # (M,): each model's own reduction
            dims = tuple(range(1, elementwise.dim()))
            return elementwise.mean(dims) if self.reduction == "mean" else elementwise.sum(dims)
        return elementwise.mean() if self.reduction == "mean" else elementwise.sum()

    def backward(self) -> torch.Tensor:  # type: ignore[override]
        """dL/dprediction, of the prediction's shape; frees what forward cached."""
        return self._gradient()

    def _gradient(self) -> torch.Tensor:
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

    def _gradient(self) -> torch.Tensor:
        difference = self._saved(self.difference)
        self._release()
        return difference * (2.0 * self._scale(difference))


class BCELoss(Loss):
    """L = −mean(y · log ŷ + (1 − y) · log(1 − ŷ)), each log clamped at −100 like torch;
    backward: dL/dŷ = (ŷ − y) / max(ŷ (1 − ŷ), 1e-12) / N.

    Predictions and targets must lie in [0, 1] (put a Sigmoid before it). torch's kernel checks
    that for free; here a check costs a reduction and a read-back to the host (a device sync on
    a GPU), so a training step does not make it: a prediction out of [0, 1] gives a NaN loss,
    a target out of it a wrong one. ``check=True`` checks every forward (ValueError naming the
    offending operand and its range); `BCELoss.validate` checks once, e.g. at evaluation.

    Args:
        reduction: ``"mean"`` (default) or ``"sum"``.
        check: validate the operands' range in every forward (reads two values back).
    """

    # torch's floor on ŷ(1 − ŷ) in the backward: its kernel's `constexpr float EPSILON = 1e-12`,
    # i.e. 1e-12 rounded to float32 (in float64 the exact 1e-12 would differ from torch by 4e-9).
    EPSILON = 9.999999960041972e-13

    def __init__(self, reduction: str = "mean", *, check: bool = False) -> None:
        super().__init__(reduction)
        self.check = check

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self._store(prediction, target)
        if self.check:
            self.validate(prediction, target)
        log_p = prediction.log().clamp_min(-100)
        log_1mp = torch.log1p(-prediction).clamp_min(-100)
        # y · log ŷ + (1 − y) · log(1 − ŷ) is lerp(log(1 − ŷ), log ŷ, y): one kernel, not four.
        return -self._reduce(torch.lerp(log_1mp, log_p, target))

    @staticmethod
    def validate(prediction: torch.Tensor, target: torch.Tensor) -> None:
        """Raise ValueError unless every prediction and target lies in [0, 1] (NaN passes: a
        diverged model gets a NaN loss, not an error). Reads values back to the host."""
        # The common case costs one reduction over both tensors and one read-back; only a value
        # out of range (or a NaN: the comparisons are False) pays for the per-tensor check.
        operands = (prediction, target)
        if prediction.shape == target.shape:
            low, high = torch.stack(torch.aminmax(torch.stack(operands))).tolist()
            if 0 <= low <= high <= 1:
                return
        for name, tensor in zip(("prediction", "target"), operands, strict=True):
            low, high = torch.stack(torch.aminmax(tensor)).tolist()
            if low < 0 or high > 1:
                raise ValueError(
                    f"BCELoss: every {name} must lie in [0, 1], got values in "
                    f"[{low:.6g}, {high:.6g}]"
                    + (" (apply a Sigmoid to the model output)" if name == "prediction" else "")
                )

    def _gradient(self) -> torch.Tensor:
        p, target = self._saved(self.prediction), self.target
        self._release()
        denominator = ((1 - p) * p).clamp_min(self.EPSILON)
        return (p - target) / denominator * self._scale(p)

    def extra_repr(self) -> str:
        return ", ".join(
            ([] if self.reduction == "mean" else [f"reduction={self.reduction!r}"])
            + (["check=True"] if self.check else [])
        )


class CrossEntropyLoss(Loss):
    r"""Cross entropy of class logits and class indices, like PyTorch's ``nn.CrossEntropyLoss``:

    .. math::
        \ell_n = -\log \operatorname{softmax}(z_n)_{y_n}
               = \log \sum_c e^{z_{nc} - m_n} - (z_{n y_n} - m_n),
        \quad m_n = \max_c z_{nc}, \qquad L = \tfrac{1}{N} \sum_n \ell_n \text{ (or } \sum_n\text{)}

    (log-sum-exp with the row maximum subtracted: finite for any finite logits).
    Backward: :math:`\partial L / \partial z = (\operatorname{softmax}(z)
    - \operatorname{onehot}(y)) / N` (without the 1/N for ``reduction="sum"``).

    A class index out of ``[0, C)`` makes the gather fail (torch's own error on the CPU, a
    device-side assert on a GPU); ``check=True`` checks the range first in every forward, with a
    clear ValueError, at the cost of a read-back to the host (`CrossEntropyLoss.validate` does
    it once).

    Args:
        reduction: ``"mean"`` (default) or ``"sum"`` over the batch. (PyTorch's ``weight``,
            ``ignore_index``, ``label_smoothing`` and class-probability targets are not
            supported.)
        check: validate the class indices' range in every forward (reads two values back).

    Shape:
        - Prediction: ``(N, C)`` floating-point logits (no softmax before it).
        - Target: ``(N,)`` int64 class indices in ``[0, C)``.
        - Output: a scalar.
        - Stacked (`StackedLoss`): prediction ``(M, N, C)``, target ``(M, N)`` or ``(N,)``,
          output ``(M,)``.
    """

    _cache = ("prediction", "target", "log_probs")

    def __init__(self, reduction: str = "mean", *, check: bool = False) -> None:
        super().__init__(reduction)
        self.check = check
        self.log_probs: torch.Tensor | None = None

    def _check(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        dims, shape = (3, "(M, N, C)") if self._stacked else (2, "(N, C)")
        if prediction.dim() != dims:
            raise ValueError(
                f"{self._name}: expected prediction (class logits) of shape {shape}, got "
                f"{tuple(prediction.shape)}"
            )
        if not prediction.is_floating_point():
            raise TypeError(
                f"{self._name}: prediction must be floating point, got {prediction.dtype}"
            )
        if target.dtype != torch.int64:
            raise TypeError(
                f"{self._name}: target must hold class indices of dtype torch.int64, got "
                f"{target.dtype} (convert with target.long(); class probabilities are not "
                "supported)"
            )
        rows = prediction.shape[:-1]
        if target.shape != rows and not (self._stacked and target.shape == rows[1:]):
            expected = f"{tuple(rows)}" + (f" or {tuple(rows[1:])}" if self._stacked else "")
            raise ValueError(
                f"{self._name}: target shape {tuple(target.shape)} does not match "
                f"prediction shape {tuple(prediction.shape)}: expected {expected}, one class "
                "index per row"
            )
        if prediction.numel() == 0:
            raise ValueError(
                f"{self._name}: got an empty batch or no classes: prediction shape "
                f"{tuple(prediction.shape)}"
            )
        if self.check:
            self.validate(prediction, target)

    @staticmethod
    def validate(prediction: torch.Tensor, target: torch.Tensor) -> None:
        """Raise ValueError unless every target is a class index in ``[0, C)``, C the size of
        the prediction's last dimension. Reads two values back to the host."""
        classes = prediction.shape[-1]
        low, high = torch.stack(torch.aminmax(target)).tolist()
        if low < 0 or high >= classes:
            raise ValueError(
                f"CrossEntropyLoss: every target must be a class index in [0, {classes}), got "
                f"values in [{low}, {high}]"
            )

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self._store(prediction, target)
        shifted = prediction - prediction.amax(-1, keepdim=True)  # each row's max is 0
        self.log_probs = shifted - shifted.exp().sum(-1, keepdim=True).log()  # log softmax
        picked = self.log_probs.gather(-1, self._index())  # (…, N, 1): log softmax(z_n)[y_n]
        return -self._reduce(picked)

    def _index(self) -> torch.Tensor:
        """The targets as a gather/scatter index of the log-probabilities' shape but 1 class."""
        index = self.target.unsqueeze(-1)
        shape = (*self.log_probs.shape[:-1], 1)
        return index if index.shape == shape else index.expand(shape)  # shared by the models

    def _gradient(self) -> torch.Tensor:
        log_probs = self._saved(self.log_probs)
        index = self._index()
        self._release()
        grad = log_probs.exp()  # softmax
        grad.scatter_add_(-1, index, grad.new_full(index.shape, -1.0))  # − onehot(y)
        return grad.mul_(self._scale(index))

    def extra_repr(self) -> str:
        return ", ".join(
            ([] if self.reduction == "mean" else [f"reduction={self.reduction!r}"])
            + (["check=True"] if self.check else [])
        )


class StackedLoss(Module):
    r"""A criterion applied to M stacked models at once: one loss per model.

    .. math::
        L_m = \text{criterion}(\hat y_m, y_m), \quad m = 1 \dots M, \qquad
        \text{backward: } \frac{\partial}{\partial \hat y_m} \sum_k L_k
        = \frac{\partial L_m}{\partial \hat y_m}

    Each model's loss is the criterion's on its own slice (its own mean over its own batch, not
    a mean over the M models), and ``backward()`` returns every model's own gradient, as if
    each had been trained alone; it is the gradient of ``losses.sum()``, what a torch.func user
    back-propagates from a vmapped loss.

    Args:
        criterion: ``MSELoss``, ``BCELoss`` or ``CrossEntropyLoss``, with its reduction and
            ``check`` (the criterion itself is not changed: the StackedLoss holds a copy).

    Shape:
        - Prediction: ``(M, B, …)`` (a stacked model's output; ``(M, B, C)`` logits for
          CrossEntropyLoss).
        - Target: the prediction's shape (one target per model) or its shape without M (the
          same target for every model); class indices ``(M, B)`` or ``(B,)`` for
          CrossEntropyLoss.
        - Output: ``(M,)``.
    """

    def __init__(self, criterion: Loss) -> None:
        super().__init__()
        if type(criterion) not in (MSELoss, BCELoss, CrossEntropyLoss):
            raise TypeError(
                "StackedLoss: expected an MSELoss, BCELoss or CrossEntropyLoss, got "
                f"{type(criterion).__name__}"
            )
        stacked = copy.copy(criterion)
        for name in stacked._cache:  # nothing of the original's last forward
            setattr(stacked, name, None)
        stacked._released = False
        stacked._stacked = True
        self.criterion = stacked

    def __call__(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.forward(input, target)  # torch's names, as `Loss.__call__`

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.criterion(prediction, target)

    def backward(self) -> torch.Tensor:  # type: ignore[override]
        """Each model's gradient of its own loss, ``(M, B, …)``; frees the forward's cache."""
        return self.criterion._gradient()
