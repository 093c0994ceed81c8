"""Optimizers against torch.optim (tinygrad's test_optim style): from the same start, 20 steps of
ours and of torch's with identical gradients, parameters equal to 1e-12 in float64. The test id
says the configuration."""

from __future__ import annotations

import pytest
import torch

import framework as fw
from bench.harness.reference import torch_loss, torch_twin

F64 = torch.float64
STEPS = 20
TOL = {"atol": 1e-12, "rtol": 1e-12}
SHAPES = [(4, 3), (4,), (1, 4), (1,)]  # several tensors: exercises the flat buffer's views

# (optimizer name, options): every option alone, then combinations.
CONFIGS = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.5}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"lr": 0.1, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.5, "dampening": 0.1, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("Adam", {}),
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.01, "betas": (0.5, 0.9)}),
    ("Adam", {"lr": 0.01, "betas": (0.0, 0.0)}),
    ("Adam", {"lr": 0.01, "eps": 0.1}),
    ("Adam", {"lr": 0.01, "eps": 0.0}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.02, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.05}),
    ("RMSprop", {}),
    ("RMSprop", {"lr": 0.001, "alpha": 0.9}),
    ("RMSprop", {"lr": 0.001, "alpha": 0.0}),
    ("RMSprop", {"lr": 0.001, "eps": 0.1}),
    ("RMSprop", {"lr": 0.001, "momentum": 0.9}),
    ("RMSprop", {"lr": 0.001, "centered": True}),
    ("RMSprop", {"lr": 0.001, "weight_decay": 0.1}),
    ("RMSprop", {"lr": 0.001, "centered": True, "momentum": 0.9}),
    ("RMSprop", {"lr": 0.001, "centered": True, "weight_decay": 0.1}),
    ("RMSprop", {"lr": 0.001, "momentum": 0.5, "weight_decay": 0.1}),
    (
        "RMSprop",
        {
            "lr": 0.002,
            "alpha": 0.95,
            "eps": 1e-6,
            "momentum": 0.8,
            "centered": True,
            "weight_decay": 0.05,
        },
    ),
]


def config_id(config: tuple[str, dict]) -> str:
    name, options = config
    return f"{name}(" + ",".join(f"{key}={value}" for key, value in options.items()) + ")"


def make_pair(groups: list[dict], seed: int = 0):
    """Our Parameters and torch's nn.Parameters with the same random values, grouped the same way.

    ``groups``: ``[{"shapes": [...], **options}, ...]``; returns (ours, theirs), each a list of
    parameter groups (dicts) ready for an optimizer.
    """
    generator = torch.Generator().manual_seed(seed)
    ours, theirs = [], []
    for group in groups:
        options = {key: value for key, value in group.items() if key != "shapes"}
        values = [torch.randn(shape, dtype=F64, generator=generator) for shape in group["shapes"]]
        ours.append({"params": [fw.Parameter(v.clone()) for v in values], **options})
        theirs.append({"params": [torch.nn.Parameter(v.clone()) for v in values], **options})
    return ours, theirs


def run_both(name: str, groups: list[dict], options: dict, parity, case: str) -> None:
    """20 steps of ours and torch's with the same seeded random gradients; compare each step."""
    ours_groups, torch_groups = make_pair(groups)
    ours = getattr(fw.optim, name)(ours_groups, **options)
    theirs = getattr(torch.optim, name)(torch_groups, **options)
    ours_params = [p for g in ours_groups for p in g["params"]]
    torch_params = [p for g in torch_groups for p in g["params"]]
    generator = torch.Generator().manual_seed(1)
    for _ in range(STEPS):
        for mine, reference in zip(ours_params, torch_params, strict=True):
            grad = torch.randn(mine.shape, dtype=F64, generator=generator)
            mine.grad.copy_(grad)  # in place: .grad is a view of the optimizer's buffer
            reference.grad = grad.clone()
        ours.step()
        theirs.step()
        for index, (mine, reference) in enumerate(zip(ours_params, torch_params, strict=True)):
            parity.check(f"{case} param {index}", mine.data, reference.detach(), **TOL)


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_optimizer_20_steps_equal_torch_optim(parity, config):
    name, options = config
    run_both(name, [{"shapes": SHAPES}], options, parity, f"{config_id(config)} random grads")


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_optimizer_20_training_steps_equal_torch_optim(parity, config):
    """The gradients come from each framework's own model: the whole training loop agrees."""
    name, options = config
    generator = torch.Generator().manual_seed(2)
    model = fw.Sequential(
        fw.Linear(2, 6), fw.Tanh(), fw.Linear(6, 1), fw.Sigmoid(), generator=generator
    ).double()
    criterion = fw.BCELoss()
    twin, twin_criterion = torch_twin(model), torch_loss(criterion)
    ours = getattr(fw.optim, name)(model.parameters(), **options)
    theirs = getattr(torch.optim, name)(twin.parameters(), **options)
    x = torch.rand(32, 2, dtype=F64, generator=generator)
    y = ((x - 0.5).square().sum(1, keepdim=True) < 0.16).to(F64)
    for _ in range(STEPS):
        criterion(model(x), y)
        ours.zero_grad()
        model.backward(criterion.backward())
        ours.step()
        theirs.zero_grad()
        twin_criterion(twin(x), y).backward()
        theirs.step()
    twin_params = dict(twin.named_parameters())
    for param_name, param in model.named_parameters():
        parity.check(
            f"{config_id(config)} training {param_name}",
            param.data,
            twin_params[param_name].detach(),
            **TOL,
        )


GROUP_OPTIONS = {
    "SGD": [{"lr": 0.1, "momentum": 0.9}, {"lr": 0.01}],
    "Adam": [{"lr": 0.01}, {"lr": 0.001, "betas": (0.5, 0.9)}],
    "RMSprop": [{"lr": 0.01, "centered": True}, {"lr": 0.001, "momentum": 0.5}],
}


@pytest.mark.parametrize("name", GROUP_OPTIONS)
def test_param_groups_with_different_lr_equal_torch_optim(parity, name):
    first, second = GROUP_OPTIONS[name]
    groups = [{"shapes": [(3, 2), (3,)], **first}, {"shapes": [(1, 3), (1,)], **second}]
    run_both(name, groups, {}, parity, f"{name} param groups")


def test_param_groups_fill_in_defaults_like_torch():
    ours_groups, torch_groups = make_pair([{"shapes": [(2,)], "lr": 0.5}, {"shapes": [(3,)]}])
    ours = fw.optim.SGD(ours_groups, lr=0.1, momentum=0.9)
    theirs = torch.optim.SGD(torch_groups, lr=0.1, momentum=0.9)
    for mine, reference in zip(ours.param_groups, theirs.param_groups, strict=True):
        for key in ("lr", "momentum", "dampening", "weight_decay", "nesterov"):
            assert mine[key] == reference[key], key


@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop"])
def test_defaults_equal_torch_optim(name):
    param = fw.Parameter(torch.zeros(1))
    ours = getattr(fw.optim, name)([param])
    theirs = getattr(torch.optim, name)([torch.nn.Parameter(torch.zeros(1))])
    for key, value in ours.defaults.items():
        assert theirs.defaults[key] == value, key
