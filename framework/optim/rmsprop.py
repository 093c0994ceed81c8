"""RMSprop (Hinton; Graves 2013 for the centred form), as PyTorch's ``optim.RMSprop``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import torch

from ..module import Parameter
from .optimizer import (
    FlatGroup,
    Optimizer,
    add_scaled,
    add_scaled_,
    check_range,
    is_zero,
    root_of_second_moment,
)


class RMSprop(Optimizer):
    r"""PyTorch's ``optim.RMSprop`` update rule:

    .. math::
        g_t &\leftarrow g_t + \lambda \theta_{t-1} \\
        v_t &\leftarrow \alpha v_{t-1} + (1 - \alpha) g_t^2 \\
        \bar g_t &\leftarrow \alpha \bar g_{t-1} + (1 - \alpha) g_t, \quad
            \tilde v_t = v_t - \bar g_t^2 \text{ if centered else } v_t \\
        b_t &\leftarrow \mu b_{t-1} + g_t / (\sqrt{\tilde v_t} + \epsilon) \\
        \theta_t &\leftarrow \theta_{t-1} - \gamma b_t
            \quad (\text{with } \mu = 0,\ b_t = g_t / (\sqrt{\tilde v_t} + \epsilon))

    State per parameter, as torch's: ``step`` (a float tensor), ``square_avg`` (:math:`v_t`),
    ``momentum_buffer`` (:math:`b_t`, when μ > 0), ``grad_avg`` (:math:`\bar g_t`, when
    centered). The groups also hold torch's ``capturable``, ``foreach``, ``maximize`` and
    ``differentiable``, accepted off (False or None) as keyword arguments or group keys, refused
    on.

    Per-model hyperparameters: over the parameters of M stacked models (``fw.stack``) every
    number below may be a tensor of shape ``(M,)`` instead, model m updated with value m: one
    step trains, say, a grid of M learning rates. Validated when given (finite, in range); a
    step reads nothing back.

    Any number below may also be a 0-dim tensor (torch's ``lr=torch.tensor(0.01)``), over any
    parameters: one value for the whole group, like a float, validated like one; it stays that
    tensor in ``param_groups``, as in torch, so a change made in place reaches the next step.

    Args:
        params: parameters or parameter groups.
        lr: γ (default 1e-2, torch's).
        alpha: smoothing constant α (default 0.99).
        eps: ε (default 1e-8).
        weight_decay: L2 penalty λ (default 0).
        momentum: μ (default 0).
        centered: normalise by the estimated variance of the gradient.
        **torch_only: torch's switches above, by keyword (positional in torch); another keyword
            is a TypeError.
    """

    torch_only: ClassVar[dict[str, Any]] = {
        "capturable": False,
        "foreach": None,
        "maximize": False,
        "differentiable": False,
    }

    def __init__(
        self,
        params: Iterable[Parameter] | Iterable[dict],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        **torch_only: Any,
    ) -> None:
        defaults = dict(  # torch's order, so that state dicts list the keys as torch's do
            lr=lr,
            momentum=momentum,
            alpha=alpha,
            eps=eps,
            centered=centered,
            weight_decay=weight_decay,
        )
        super().__init__(params, defaults, **torch_only)

    def _validate(self, group: dict[str, Any]) -> None:
        super()._validate(group)
        check_range("alpha", group["alpha"], 0.0)
        check_range("eps", group["eps"], 0.0)
        check_range("momentum", group["momentum"], 0.0)

    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        keys = ("step", "square_avg")
        keys += ("momentum_buffer",) if self._momentum(group) else ()
        return keys + (("grad_avg",) if group["centered"] else ())

    @staticmethod
    def _momentum(group: dict[str, Any]) -> bool:
        """Whether the group keeps a momentum buffer: μ > 0, or a tensor μ, per-model or 0-dim
        (not read back in a step: with μ = 0 it gets b = g / avg, torch's update without
        momentum)."""
        momentum = group["momentum"]
        return isinstance(momentum, torch.Tensor) or momentum > 0

    def _update(self, group: dict[str, Any], flat: FlatGroup) -> None:
        param, grad, state = flat.data, flat.grad, flat.state
        if not state:
            state["step"] = 0
            state["square_avg"] = torch.zeros_like(param)
            if self._momentum(group):
                state["momentum_buffer"] = torch.zeros_like(param)
            if group["centered"]:
                state["grad_avg"] = torch.zeros_like(param)
        state["step"] += 1
        weight_decay = flat.vector(group["weight_decay"], "weight_decay")
        if not is_zero(weight_decay):
            grad = add_scaled(grad, weight_decay, param)
        alpha = group["alpha"]
        square_avg = state["square_avg"].mul_(flat.vector(alpha, "alpha"))
        if isinstance(alpha, torch.Tensor):
            square_avg.addcmul_(grad * flat.vector(alpha, "1 - alpha", lambda a: 1 - a), grad)
        else:
            square_avg.addcmul_(grad, grad, value=1 - alpha)
        if group["centered"]:
            grad_avg = state["grad_avg"].lerp_(
                grad, flat.vector(alpha, "1 - alpha", lambda a: 1 - a)
            )
            average = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
        else:
            average = root_of_second_moment(square_avg, group["eps"])
        average.add_(flat.vector(group["eps"], "eps"))
        lr = flat.vector(group["lr"], "lr")
        if self._momentum(group):
            buffer = state["momentum_buffer"].mul_(flat.vector(group["momentum"], "momentum"))
            add_scaled_(param, lr, buffer.addcdiv_(grad, average), sign=-1.0)
        elif isinstance(lr, torch.Tensor):
            param.addcdiv_(grad, average.div_(lr), value=-1)  # g / (avg / lr), one fused update
        else:
            param.addcdiv_(grad, average, value=-lr)
