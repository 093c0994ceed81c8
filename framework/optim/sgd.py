"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import torch

from ..module import Parameter
from .optimizer import FlatGroup, Optimizer, add_scaled, add_scaled_, check_range, is_zero, values


class SGD(Optimizer):
    r"""PyTorch's ``optim.SGD`` update rule, with :math:`g_t` the gradient:

    .. math::
        g_t &\leftarrow g_t + \lambda \theta_{t-1} \\
        b_t &\leftarrow \mu b_{t-1} + (1 - \tau) g_t \quad (b_1 = g_1) \\
        g_t &\leftarrow g_t + \mu b_t \text{ if nesterov else } b_t \\
        \theta_t &\leftarrow \theta_{t-1} - \gamma g_t

    State per parameter, as torch's: ``momentum_buffer`` (:math:`b_t`, when μ ≠ 0). The groups
    also hold torch's ``maximize``, ``foreach``, ``differentiable`` and ``fused``, accepted off
    (False or None) as keyword arguments or group keys, refused on.

    Per-model hyperparameters: over the parameters of M stacked models (``fw.stack``) every
    number below may be a tensor of shape ``(M,)`` instead, model m updated with value m: one
    step trains, say, a grid of M learning rates. Validated when given (finite, in range; a
    per-model momentum keeps a buffer for every model, so a model with μ = 0 needs τ = 0); a
    step reads nothing back.

    Any number below may also be a 0-dim tensor (torch's ``lr=torch.tensor(0.01)``), over any
    parameters: one value for the whole group, like a float, validated like one; it stays that
    tensor in ``param_groups``, as in torch, so a change made in place reaches the next step.

    Args:
        params: parameters or parameter groups.
        lr: learning rate γ (default 1e-3, torch's).
        momentum: μ (default 0).
        dampening: τ (default 0).
        weight_decay: L2 penalty λ (default 0).
        nesterov: Nesterov momentum (needs momentum > 0 and dampening = 0).
        **torch_only: torch's switches above, by keyword (``foreach=False``); another keyword
            is a TypeError.
    """

    torch_only: ClassVar[dict[str, Any]] = {
        "maximize": False,
        "foreach": None,
        "differentiable": False,
        "fused": None,
    }

    def __init__(
        self,
        params: Iterable[Parameter] | Iterable[dict],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        **torch_only: Any,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
        )
        super().__init__(params, defaults, **torch_only)

    def _validate(self, group: dict[str, Any]) -> None:
        super()._validate(group)
        check_range("momentum", group["momentum"], 0.0)
        check_range("dampening", group["dampening"], 0.0)
        momenta, dampenings = values(group["momentum"]), values(group["dampening"])
        if group["nesterov"] and (any(m <= 0 for m in momenta) or any(d != 0 for d in dampenings)):
            raise ValueError("nesterov momentum requires momentum > 0 and dampening = 0")
        if isinstance(group["momentum"], torch.Tensor) and 0 in momenta and any(dampenings):
            # A momentum tensor (per-model or 0-dim: not read back in a step) keeps a buffer;
            # with μ = 0 it is b = (1 − τ) g, torch's plain g (no buffer) only when τ = 0.
            raise ValueError(
                "a momentum tensor with zeros needs dampening = 0 for those models "
                "(torch's momentum = 0 ignores dampening)"
            )

    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        return () if is_zero(group["momentum"]) else ("momentum_buffer",)

    def _update(self, group: dict[str, Any], flat: FlatGroup) -> None:
        param, grad, state = flat.data, flat.grad, flat.state
        weight_decay = flat.vector(group["weight_decay"], "weight_decay")
        if not is_zero(weight_decay):
            grad = add_scaled(grad, weight_decay, param)
        if not is_zero(group["momentum"]):
            momentum = flat.vector(group["momentum"], "momentum")
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = state["momentum_buffer"] = grad.clone()
            else:
                keep = flat.vector(group["dampening"], "1 - dampening", lambda d: 1 - d)
                add_scaled_(buffer.mul_(momentum), keep, grad)
            grad = add_scaled(grad, momentum, buffer) if group["nesterov"] else buffer
        add_scaled_(param, flat.vector(group["lr"], "lr"), grad, sign=-1.0)
