"""Adam (Kingma & Ba, 2015) with L2 weight decay, as PyTorch's ``optim.Adam``."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, ClassVar

import torch

from ..module import Parameter
from .optimizer import Optimizer, check_range


class Adam(Optimizer):
    r"""PyTorch's ``optim.Adam`` update rule (amsgrad off):

    .. math::
        g_t &\leftarrow g_t + \lambda \theta_{t-1} \\
        m_t &\leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        v_t &\leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        \theta_t &\leftarrow \theta_{t-1} - \frac{\gamma}{1 - \beta_1^t}
            \frac{m_t}{\sqrt{v_t} / \sqrt{1 - \beta_2^t} + \epsilon}

    State per parameter, as torch's: ``step`` (t, a float tensor), ``exp_avg`` (:math:`m_t`),
    ``exp_avg_sq`` (:math:`v_t`). The groups also hold torch's ``amsgrad``, ``maximize``,
    ``foreach``, ``capturable``, ``differentiable``, ``fused`` and ``decoupled_weight_decay``,
    accepted off.

    Args:
        params: parameters or parameter groups.
        lr: γ (default 1e-3).
        betas: (β₁, β₂), each in [0, 1) (default (0.9, 0.999)).
        eps: ε (default 1e-8).
        weight_decay: L2 penalty λ (default 0).
    """

    torch_only: ClassVar[dict[str, Any]] = {
        "amsgrad": False,
        "maximize": False,
        "foreach": None,
        "capturable": False,
        "differentiable": False,
        "fused": None,
        "decoupled_weight_decay": False,
    }

    def __init__(
        self,
        params: Iterable[Parameter] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)

    def _validate(self, group: dict[str, Any]) -> None:
        super()._validate(group)
        if len(group["betas"]) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {group['betas']!r}")
        check_range("beta1 (betas[0])", group["betas"][0], 0.0, 1.0, open_high=True)
        check_range("beta2 (betas[1])", group["betas"][1], 0.0, 1.0, open_high=True)
        check_range("eps", group["eps"], 0.0)

    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("step", "exp_avg", "exp_avg_sq")

    def _update(
        self, group: dict[str, Any], state: dict[str, Any], param: torch.Tensor, grad: torch.Tensor
    ) -> None:
        beta1, beta2 = group["betas"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(param)
            state["exp_avg_sq"] = torch.zeros_like(param)
        # Scratch for the denominator, reused every step: a fresh temporary the size of the
        # whole buffer gets new pages from the OS each step (the page faults cost more than the
        # sqrt itself on a large model). Not part of the state dict ("_" key).
        scratch = state.get("_denominator")
        if scratch is None:
            scratch = state["_denominator"] = torch.empty_like(param)
        state["step"] += 1
        step, exp_avg, exp_avg_sq = state["step"], state["exp_avg"], state["exp_avg_sq"]
        if group["weight_decay"] != 0:
            grad = grad.add(param, alpha=group["weight_decay"])
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        step_size = group["lr"] / (1 - beta1**step)
        denominator = torch.sqrt(exp_avg_sq, out=scratch)
        denominator.div_(math.sqrt(1 - beta2**step)).add_(group["eps"])
        param.addcdiv_(exp_avg, denominator, value=-step_size)
