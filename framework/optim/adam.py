"""Adam (Kingma & Ba, 2015) with L2 or decoupled weight decay, as PyTorch's ``optim.Adam``, and
AdamW (Loshchilov & Hutter, 2019), as ``optim.AdamW``: Adam with the decay decoupled."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, ClassVar

import torch

from ..module import Parameter
from .optimizer import (
    FlatGroup,
    Optimizer,
    add_scaled,
    check_range,
    is_zero,
    root_of_second_moment,
)


class Adam(Optimizer):
    r"""PyTorch's ``optim.Adam`` update rule (amsgrad off):

    .. math::
        g_t &\leftarrow g_t + \lambda \theta_{t-1}
            \quad \text{(decoupled: } \theta_{t-1} \leftarrow (1 - \gamma\lambda)
            \,\theta_{t-1} \text{ instead)} \\
        m_t &\leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        v_t &\leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        \theta_t &\leftarrow \theta_{t-1} - \frac{\gamma}{1 - \beta_1^t}
            \frac{m_t}{\sqrt{v_t} / \sqrt{1 - \beta_2^t} + \epsilon}

    State per parameter, as torch's: ``step`` (t, a float tensor), ``exp_avg`` (:math:`m_t`),
    ``exp_avg_sq`` (:math:`v_t`). The groups also hold torch's ``amsgrad``, ``maximize``,
    ``foreach``, ``capturable``, ``differentiable`` and ``fused``, accepted off (False or None)
    as keyword arguments or group keys, refused on; and ``decoupled_weight_decay``, implemented
    (True: AdamW's decay).

    Per-model hyperparameters: over the parameters of M stacked models (``fw.stack``) every
    number below may be a tensor of shape ``(M,)`` instead (each of β₁, β₂), model m updated
    with value m: one step trains, say, a grid of M learning rates. Validated when given
    (finite, in range); a step reads nothing back.

    Any number below may also be a 0-dim tensor (torch's ``lr=torch.tensor(0.01)``), over any
    parameters: one value for the whole group, like a float, validated like one; it stays that
    tensor in ``param_groups``, as in torch, so a change made in place reaches the next step.

    Args:
        params: parameters or parameter groups.
        lr: γ (default 1e-3).
        betas: (β₁, β₂), each in [0, 1) (default (0.9, 0.999)).
        eps: ε (default 1e-8).
        weight_decay: λ (default 0): an L2 penalty, or with ``decoupled_weight_decay=True``
            a decay of the weights by γλ each step.
        **torch_only: torch's switches above, by keyword (``amsgrad=False``, positional in
            torch; ``decoupled_weight_decay=True``); another keyword is a TypeError.
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
    implemented: ClassVar[frozenset[str]] = frozenset({"decoupled_weight_decay"})

    def __init__(
        self,
        params: Iterable[Parameter] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        **torch_only: Any,
    ) -> None:
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults, **torch_only)

    def _validate(self, group: dict[str, Any]) -> None:
        super()._validate(group)
        if len(group["betas"]) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {group['betas']!r}")
        check_range("beta1 (betas[0])", group["betas"][0], 0.0, 1.0, open_high=True)
        check_range("beta2 (betas[1])", group["betas"][1], 0.0, 1.0, open_high=True)
        check_range("eps", group["eps"], 0.0)
        if not isinstance(group["decoupled_weight_decay"], bool):
            raise ValueError(
                "decoupled_weight_decay must be True or False, got "
                f"{group['decoupled_weight_decay']!r}"
            )

    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("step", "exp_avg", "exp_avg_sq")

    def _update(self, group: dict[str, Any], flat: FlatGroup) -> None:
        param, grad, state = flat.data, flat.grad, flat.state
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
        weight_decay = flat.vector(group["weight_decay"], "weight_decay")
        if not is_zero(weight_decay) and group["decoupled_weight_decay"]:
            # θ ← θ (1 − γλ), before the moments (torch's order); the gradient stays raw
            param.mul_(1 - flat.vector(group["lr"], "lr") * weight_decay)
        elif not is_zero(weight_decay):
            grad = add_scaled(grad, weight_decay, param)
        exp_avg.lerp_(grad, flat.vector(beta1, "1 - beta1", lambda b: 1 - b))
        exp_avg_sq.mul_(flat.vector(beta2, "beta2"))
        if isinstance(beta2, torch.Tensor):
            exp_avg_sq.addcmul_(grad * flat.vector(beta2, "1 - beta2", lambda b: 1 - b), grad)
        else:
            exp_avg_sq.addcmul_(grad, grad, value=1 - beta2)
        # Per-model betas: the bias corrections are vectors, recomputed each step (2 kernels).
        bias_correction1 = 1 - flat.vector(beta1, "beta1") ** step
        bias_correction2 = 1 - flat.vector(beta2, "beta2") ** step
        # θ − γ/c₁ · m / (√v/√c₂ + ε) computed as θ − (γ√c₂/c₁) · m / (√v + ε√c₂): the same
        # update without a division pass over √v (c₂ = 1 − β₂ᵗ).
        if isinstance(bias_correction2, torch.Tensor):
            root = bias_correction2.sqrt_()
        else:
            root = math.sqrt(bias_correction2)
        step_size = flat.vector(group["lr"], "lr") * root / bias_correction1
        eps = flat.vector(group["eps"], "eps")
        denominator = root_of_second_moment(exp_avg_sq, eps, out=scratch)
        denominator.add_(eps * root)
        if isinstance(step_size, torch.Tensor):
            # m / (denominator / step size): the per-model step size in the same fused update.
            param.addcdiv_(exp_avg, denominator.div_(step_size), value=-1)
        else:
            param.addcdiv_(exp_avg, denominator, value=-step_size)


class AdamW(Adam):
    r"""PyTorch's ``optim.AdamW``: Adam with decoupled weight decay (Loshchilov & Hutter, 2019),

    .. math::
        \theta_{t-1} &\leftarrow (1 - \gamma \lambda)\, \theta_{t-1} \\
        m_t, v_t, \theta_t &\leftarrow \text{Adam's, from the raw gradient } g_t

    Exactly ``Adam(..., decoupled_weight_decay=True)``, as in PyTorch (whose ``optim.AdamW`` is
    that subclass): the groups hold ``decoupled_weight_decay=True``, so state dicts move between
    this class, PyTorch's ``optim.AdamW`` and its ``optim.Adam(decoupled_weight_decay=True)``.
    Per-model and 0-dim tensor hyperparameters as Adam's.

    Args:
        params, lr, betas, eps: as Adam's.
        weight_decay: λ (default 1e-2, torch's).
        **torch_only: torch's off switches (``amsgrad=False``, ``foreach=None``, ...).
    """

    torch_only: ClassVar[dict[str, Any]] = {**Adam.torch_only, "decoupled_weight_decay": True}

    def __init__(
        self,
        params: Iterable[Parameter] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        **torch_only: Any,
    ) -> None:
        if "decoupled_weight_decay" in torch_only:  # as PyTorch's optim.AdamW: always decoupled
            raise TypeError(
                "AdamW.__init__() got an unexpected keyword argument 'decoupled_weight_decay'"
            )
        super().__init__(params, lr, betas, eps, weight_decay, **torch_only)
