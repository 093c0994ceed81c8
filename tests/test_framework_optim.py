"""Optimizers against torch.optim (tinygrad's test_optim style): from the same start, 20 steps of
ours and of torch's with identical gradients, parameters equal to 1e-12 in float64. Then torch's
semantics: tensors held before the optimizer was built follow training, ``zero_grad``, and
``state_dict`` equal to torch's key for key and handed over in both directions. The test id says
the configuration. PARITY lists the CONFIGS pairs for the coverage check of
tests/test_framework_contract.py."""

from __future__ import annotations

import inspect
import io
import math
from functools import partial

import pytest
import torch

import framework as fw
from bench.harness.reference import torch_loss, torch_twin

F64 = torch.float64
STEPS = 20
TOL = {"atol": 1e-12, "rtol": 1e-12}
SHAPES = [(4, 3), (4,), (1, 4), (1,)]  # several tensors: exercises the flat buffer's offsets
#: every optimizer of fw.optim (a new one joins every test below that runs over all of them)
OPTIMIZERS = [name for name in fw.optim.__all__ if name != "Optimizer"]

# AdamW's options: torch's defaults (weight decay 1e-2), each option alone, combinations.
ADAMW = [
    {},
    {"lr": 0.01},
    {"lr": 0.01, "weight_decay": 0.0},
    {"lr": 0.01, "weight_decay": 0.5},
    {"lr": 0.01, "betas": (0.5, 0.9)},
    {"lr": 0.01, "eps": 0.0},
    {"lr": 0.02, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.05},
]
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
    ("Adam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    *(("AdamW", options) for options in ADAMW),
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


def build(framework: str, name: str, groups: list[dict], **options):
    """Optimizer ``name`` of fw.optim (``"custom"``) or torch.optim (``"torch"``)."""
    return getattr(fw.optim if framework == "custom" else torch.optim, name)(groups, **options)


def params_of(groups: list[dict]) -> list:
    return [param for group in groups for param in group["params"]]


def value(param) -> torch.Tensor:
    return param.data if isinstance(param, fw.Parameter) else param.detach()


def set_random_grads(params: list, generator: torch.Generator) -> None:
    """Give ``params`` the next seeded random gradients."""
    for param in params:
        grad = torch.randn(param.shape, dtype=F64, generator=generator)
        if isinstance(param, fw.Parameter):
            param.grad.copy_(grad)  # in place: .grad lives in the optimizer's buffer
        else:
            param.grad = grad


def train_both(model, criterion, ours, twin, twin_criterion, theirs, x, y) -> None:
    """STEPS training steps of the framework model and of its torch.nn twin on (x, y)."""
    for _ in range(STEPS):
        criterion(model(x), y)
        ours.zero_grad()
        model.backward(criterion.backward())
        ours.step()
        theirs.zero_grad()
        twin_criterion(twin(x), y).backward()
        theirs.step()


def optimizer_pair(name: str, options: dict, groups: list[dict] | None = None):
    """Our optimizer ``name`` and torch.optim's, with ``options``, over parameters of the same
    random values grouped as ``groups`` (make_pair's; default one group of SHAPES)."""
    ours_groups, torch_groups = make_pair(groups or [{"shapes": SHAPES}])
    return build("custom", name, ours_groups, **options), build(
        "torch", name, torch_groups, **options
    )


# For test_framework_contract's coverage check: name -> factory of (ours, torch's).
PARITY = {config_id(config): partial(optimizer_pair, *config) for config in CONFIGS}


def run_both(name: str, groups: list[dict], options: dict, parity, case: str) -> None:
    """20 steps of ours and torch's with the same seeded random gradients; compare each step."""
    ours, theirs = optimizer_pair(name, options, groups)
    ours_params, torch_params = params_of(ours.param_groups), params_of(theirs.param_groups)
    ours_grads, torch_grads = (torch.Generator().manual_seed(1) for _ in range(2))
    for _ in range(STEPS):
        set_random_grads(ours_params, ours_grads)
        ours.step()
        set_random_grads(torch_params, torch_grads)
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
    train_both(model, criterion, ours, twin, twin_criterion, theirs, x, y)
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


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_defaults_equal_torch_optim(name):
    param = fw.Parameter(torch.zeros(1))
    ours = getattr(fw.optim, name)([param])
    theirs = getattr(torch.optim, name)([torch.nn.Parameter(torch.zeros(1))])
    for key, value in ours.defaults.items():
        assert theirs.defaults[key] == value, key


def torch_only_arguments(name: str) -> dict[str, object]:
    """{argument: torch's default} of every argument of torch.optim's ``name`` that is
    keyword-only there or that our signature does not have (RMSprop's switches are positional in
    torch, Adam's amsgrad too)."""
    ours = inspect.signature(getattr(fw.optim, name)).parameters
    return {
        key: parameter.default
        for key, parameter in inspect.signature(getattr(torch.optim, name)).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY or key not in ours
    }


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_torch_only_keyword_arguments_are_accepted_at_torchs_defaults(name):
    """Code written for torch.optim passes ``foreach=False``, ``maximize=False``, …: every
    keyword-only or torch-only argument of torch's signature, given explicitly at torch's
    default, is accepted and lands in the groups and the defaults as torch's do."""
    arguments = torch_only_arguments(name)
    assert arguments, name
    cls = getattr(fw.optim, name)
    # no argument forgotten (AdamW's groups also hold decoupled_weight_decay, not an argument)
    assert set(arguments) - cls.implemented == set(cls.torch_only) - cls.implemented
    ours = getattr(fw.optim, name)([fw.Parameter(torch.zeros(2))], **arguments)
    theirs = getattr(torch.optim, name)([torch.nn.Parameter(torch.zeros(2))], **arguments)
    for key in arguments:
        assert ours.param_groups[0][key] == theirs.param_groups[0][key] == arguments[key], key
        assert ours.defaults[key] == theirs.defaults[key], key


SWITCHES = [
    (name, key)
    for name in OPTIMIZERS
    for key, default in torch_only_arguments(name).items()
    if default is False or default is None  # a boolean switch (foreach, fused: None = auto)
    if key not in getattr(fw.optim, name).implemented  # Adam's decoupled_weight_decay: on works
]


@pytest.mark.parametrize(("name", "key"), SWITCHES, ids=[f"{n}({k}=True)" for n, k in SWITCHES])
def test_torch_only_switch_on_as_a_keyword_argument_is_refused_naming_it(name, key):
    implemented = getattr(fw.optim, name).implemented
    assert {k for n, k in SWITCHES if n == name} == set(torch_only_arguments(name)) - implemented
    with pytest.raises(ValueError, match=rf"^{name} does not implement torch.optim's {key}=True;"):
        getattr(fw.optim, name)([fw.Parameter(torch.zeros(2))], **{key: True})


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_unknown_keyword_argument_is_a_type_error_like_torch(name):
    params = [fw.Parameter(torch.zeros(2))]
    with pytest.raises(
        TypeError, match=rf"^{name}.__init__\(\) got an unexpected keyword argument 'bogus'$"
    ):
        getattr(fw.optim, name)(params, bogus=False)
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'bogus'"):
        getattr(torch.optim, name)([torch.nn.Parameter(torch.zeros(2))], bogus=False)


# -- 0-dim tensor hyperparameters (torch's lr=torch.tensor(0.01)) ---------------------------------
# (optimizer, options, the options given as 0-dim float64 tensors): lr alone, then every number.
SCALAR_TENSOR_CONFIGS = [
    ("SGD", {"lr": 0.1}, ("lr",)),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}, ("lr", "momentum")),
    (
        "SGD",
        {"lr": 0.05, "momentum": 0.5, "dampening": 0.1, "weight_decay": 0.01},
        ("lr", "momentum", "dampening", "weight_decay"),
    ),
    ("Adam", {"lr": 0.01}, ("lr",)),
    (
        "Adam",
        {"lr": 0.02, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.05},
        ("lr", "betas", "eps", "weight_decay"),
    ),
    ("RMSprop", {"lr": 0.001}, ("lr",)),
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
        ("lr", "alpha", "eps", "momentum", "weight_decay"),
    ),
]


def as_tensors(options: dict, keys: tuple[str, ...]) -> dict:
    """``options`` with the values under ``keys`` as new 0-dim float64 tensors (betas: each)."""

    def tensor(value):
        if isinstance(value, tuple):
            return tuple(torch.tensor(v, dtype=F64) for v in value)
        return torch.tensor(value, dtype=F64)

    return {key: tensor(value) if key in keys else value for key, value in options.items()}


def scalar_id(config: tuple[str, dict, tuple[str, ...]]) -> str:
    name, options, keys = config

    def shown(value):
        return (
            f"({','.join(shown(v) for v in value)})"
            if isinstance(value, tuple)
            else f"tensor({value})"
        )

    return config_id((name, {k: shown(v) if k in keys else v for k, v in options.items()}))


def trajectory(framework: str, name: str, options: dict, steps: int = STEPS) -> list:
    """The parameters after each of ``steps`` steps with the same seeded random gradients."""
    groups = make_pair([{"shapes": SHAPES}])[framework == "torch"]
    optimizer = build(framework, name, groups, **options)
    params, grads, out = params_of(groups), torch.Generator().manual_seed(1), []
    for _ in range(steps):
        set_random_grads(params, grads)
        optimizer.step()
        out.append([value(param).clone() for param in params])
    return out


@pytest.mark.parametrize("config", SCALAR_TENSOR_CONFIGS, ids=scalar_id)
def test_0dim_tensor_hyperparameters_equal_torch_and_the_floats(parity, config):
    """A 0-dim tensor hyperparameter, over ordinary (unstacked) parameters, is one value for
    the group: 20 steps equal torch.optim given the same tensors, and our own steps with the
    floats."""
    name, options, keys = config
    ours = trajectory("custom", name, as_tensors(options, keys))
    theirs = trajectory("torch", name, as_tensors(options, keys))
    floats = trajectory("custom", name, options)
    case = scalar_id(config)
    for step, (mine, reference, float_params) in enumerate(zip(ours, theirs, floats, strict=True)):
        for index, (param, expected, float_param) in enumerate(
            zip(mine, reference, float_params, strict=True)
        ):
            parity.check(f"{case} step {step} param {index}", param, expected, **TOL)
            parity.check(f"{case} vs floats step {step} param {index}", param, float_param, **TOL)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_0dim_tensor_lr_stays_the_tensor_and_a_change_in_place_reaches_the_next_step(parity, name):
    """As in torch, ``param_groups`` keeps the user's tensor: a schedule may change it in place
    (here halfway), and the next step uses the new value."""
    lrs = {"custom": torch.tensor(0.01, dtype=F64), "torch": torch.tensor(0.01, dtype=F64)}
    pairs = make_pair([{"shapes": SHAPES}])
    optimizers = {
        side: build(side, name, groups, lr=lrs[side])
        for side, groups in zip(("custom", "torch"), pairs, strict=True)
    }
    assert optimizers["custom"].param_groups[0]["lr"] is lrs["custom"]
    for side, groups in zip(("custom", "torch"), pairs, strict=True):
        grads = torch.Generator().manual_seed(1)
        for step in range(STEPS):
            if step == STEPS // 2:
                lrs[side].fill_(0.05)
            set_random_grads(params_of(groups), grads)
            optimizers[side].step()
    for index, (mine, reference) in enumerate(
        zip(params_of(pairs[0]), params_of(pairs[1]), strict=True)
    ):
        parity.check(f"{name} lr changed in place param {index}", value(mine), value(reference))


BAD_SCALAR_TENSORS = [
    ("SGD", {"lr": torch.tensor(-0.1)}, r"^Invalid lr: -0.1 \(must be in \[0.0, inf\]\)$"),
    ("SGD", {"momentum": torch.tensor(math.nan)}, r"^Invalid momentum: nan \(must be finite\)$"),
    (
        "SGD",
        {"momentum": torch.tensor(0.0), "dampening": 0.5},
        r"a momentum tensor with zeros needs dampening = 0",
    ),
    ("Adam", {"betas": (torch.tensor(1.0), torch.tensor(0.9))}, r"^Invalid beta1 \(betas\[0\]\)"),
    ("Adam", {"eps": torch.tensor(-1.0, dtype=F64)}, r"^Invalid eps: -1.0 \(must be in"),
    ("RMSprop", {"alpha": torch.tensor(math.inf)}, r"^Invalid alpha: inf \(must be finite\)$"),
    (
        "RMSprop",
        {"lr": torch.tensor(1)},
        r"a tensor lr must hold one floating-point value for the group, shape \(\), or one "
        r"floating-point value per model, shape \(M,\); got dtype torch.int64 and shape \(\)",
    ),
]


@pytest.mark.parametrize(
    ("name", "options", "message"), BAD_SCALAR_TENSORS, ids=lambda v: str(v)[:40]
)
def test_0dim_tensor_hyperparameters_are_validated_at_construction_like_floats(
    name, options, message
):
    with pytest.raises(ValueError, match=message):
        getattr(fw.optim, name)([fw.Parameter(torch.zeros(3, 2))], **options)


# -- tensors held by the user ---------------------------------------------------------------------
HELD_CONFIGS = [
    ("SGD", {"lr": 0.1, "momentum": 0.9}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1}),
    ("RMSprop", {"lr": 0.001, "centered": True, "momentum": 0.9}),
]


def training_pair(seed: int = 2):
    """A float64 model, its torch.nn twin, the losses and one batch."""
    generator = torch.Generator().manual_seed(seed)
    model = fw.Sequential(
        fw.Linear(2, 6), fw.Tanh(), fw.Linear(6, 1), fw.Sigmoid(), generator=generator
    ).double()
    criterion = fw.BCELoss()
    x = torch.rand(32, 2, dtype=F64, generator=generator)
    y = ((x - 0.5).square().sum(1, keepdim=True) < 0.16).to(F64)
    return model, criterion, torch_twin(model), torch_loss(criterion), x, y


@pytest.mark.parametrize("config", HELD_CONFIGS, ids=config_id)
def test_tensors_held_before_the_optimizer_follow_training(parity, config):
    """A parameter's data, every state_dict() entry and a grad, taken before the optimizer was
    built, end where torch's parameters and gradients end."""
    name, options = config
    model, criterion, twin, twin_criterion, x, y = training_pair()
    weight, bias_grad, entries = model[0].weight.data, model[2].bias.grad, model.state_dict()
    start = weight.clone()
    ours = getattr(fw.optim, name)(model.parameters(), **options)
    theirs = getattr(torch.optim, name)(twin.parameters(), **options)
    train_both(model, criterion, ours, twin, twin_criterion, theirs, x, y)
    twin_params = dict(twin.named_parameters())
    case = f"held {config_id(config)}"
    assert not torch.equal(weight, start)
    parity.check(f"{case} weight", weight, twin_params["0.weight"], **TOL)
    for key, entry in entries.items():
        parity.check(f"{case} state_dict[{key}]", entry, twin_params[key], **TOL)
    parity.check(f"{case} bias grad", bias_grad, twin_params["2.bias"].grad, **TOL)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_writes_into_held_tensors_reach_the_optimizer(name):
    param = fw.Parameter(torch.zeros(2, 3, dtype=F64))
    data, grad = param.data, param.grad
    optimizer = getattr(fw.optim, name)([param, fw.Parameter(torch.zeros(4, dtype=F64))], lr=0.25)
    data.fill_(1.0)
    grad.fill_(2.0)
    optimizer.step()
    assert param.data is data and param.grad is grad
    # Every rule moves a constant positive gradient's parameter down: by lr·g for SGD, by about
    # lr for Adam (m/√v = 1) and RMSprop (g/√((1-α)g²) = 10).
    # AdamW first decays the weight by lr · 0.01 (its default weight decay).
    expected = {"SGD": 1 - 0.25 * 2, "Adam": 1 - 0.25, "AdamW": (1 - 0.25 * 0.01) - 0.25,
                "RMSprop": 1 - 0.25 * 10}[name]  # fmt: skip
    torch.testing.assert_close(data, torch.full((2, 3), expected, dtype=F64), atol=1e-6, rtol=0)
    optimizer.zero_grad()
    assert torch.count_nonzero(grad) == 0


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_model_to_float64_after_the_optimizer_trains_the_new_tensors(parity, name):
    """``model.to(torch.float64)`` after the optimizer was built replaces every tensor: training
    goes on with the new ones, exactly as a new optimizer loaded with the state would."""
    options = {"SGD": {"momentum": 0.9}, "Adam": {}, "AdamW": {}, "RMSprop": {"momentum": 0.5}}
    options = options[name]
    model = fw.Sequential(fw.Linear(3, 4), fw.Tanh(), fw.Linear(4, 2))  # float32
    optimizer = getattr(fw.optim, name)(model.parameters(), lr=0.01, **options)
    grads = torch.Generator().manual_seed(1)
    for _ in range(3):
        set_random_grads(list(model.parameters()), grads)
        optimizer.step()
    state = optimizer.state_dict()
    reference_params = [fw.Parameter(p.data.double()) for p in model.parameters()]
    reference = getattr(fw.optim, name)(reference_params)
    reference.load_state_dict(state)  # cast to float64 on load, like torch
    model.to(torch.float64)
    reference_grads = torch.Generator().manual_seed(2)
    grads.manual_seed(2)
    for _ in range(STEPS):
        optimizer.zero_grad()
        set_random_grads(list(model.parameters()), grads)
        optimizer.step()
        set_random_grads(reference_params, reference_grads)
        reference.step()
    for index, (param, expected) in enumerate(
        zip(model.parameters(), reference_params, strict=True)
    ):
        assert param.data.dtype == param.grad.dtype == F64
        parity.check(f"{name} after model.to(float64) param {index}", param.data, expected.data)


def test_a_second_optimizer_over_the_same_parameters_leaves_both_training_them():
    param = fw.Parameter(torch.zeros(3, dtype=F64))
    first, second = fw.optim.SGD([param], lr=0.1), fw.optim.SGD([param], lr=0.2)
    for optimizer in (first, second, first):
        param.grad.fill_(1.0)
        optimizer.step()
    torch.testing.assert_close(param.data, torch.full((3,), -0.4, dtype=F64), atol=1e-15, rtol=0)


# -- zero_grad ------------------------------------------------------------------------------------
def backward_once(model: fw.Module) -> None:
    x = torch.rand(5, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    criterion = fw.MSELoss()
    criterion(model(x), torch.ones(5, 1, dtype=F64))
    model.backward(criterion.backward())
    assert all(torch.count_nonzero(p.grad) > 0 for p in model.parameters())


def mlp() -> fw.Sequential:
    return fw.Sequential(
        fw.Linear(2, 4), fw.Tanh(), fw.Linear(4, 3), fw.Tanh(), fw.Linear(3, 1)
    ).double()


@pytest.mark.parametrize(
    "optimizer", ["none", "whole model", "per layer", "first layer only"], ids=str
)
def test_module_zero_grad_zeroes_every_gradient_in_place(optimizer):
    model = mlp()
    if optimizer == "whole model":
        fw.optim.SGD(model.parameters())
    elif optimizer == "per layer":
        fw.optim.SGD([{"params": model[i].parameters()} for i in (0, 2, 4)])
    elif optimizer == "first layer only":
        fw.optim.Adam(model[0].parameters())
    held = [p.grad for p in model.parameters()]
    backward_once(model)
    model.zero_grad()
    assert all(p.grad is grad for p, grad in zip(model.parameters(), held, strict=True))
    assert all(torch.count_nonzero(grad) == 0 for grad in held)


@pytest.mark.parametrize("optimizer", [False, True], ids=["no optimizer", "optimizer"])
def test_submodule_zero_grad_zeroes_only_its_own_gradients(optimizer):
    model = mlp()
    if optimizer:  # all gradients in one flat buffer: zeroing layer 2 must not fill all of it
        fw.optim.SGD(model.parameters())
    backward_once(model)
    model[2].zero_grad()
    for name, param in model.named_parameters():
        assert (torch.count_nonzero(param.grad) == 0) == name.startswith("2."), name


def test_module_zero_grad_after_model_to_zeroes_the_new_gradients():
    model = mlp().float()
    fw.optim.RMSprop(model.parameters())
    model.double()  # new tensors: no longer the optimizer's buffer
    backward_once(model)
    model.zero_grad()
    assert all(torch.count_nonzero(p.grad) == 0 for p in model.parameters())


@pytest.mark.parametrize("target", ["optimizer", "model"])
def test_zero_grad_set_to_none_true_is_refused_and_changes_nothing(target):
    model = mlp()
    optimizer = fw.optim.SGD(model.parameters())
    backward_once(model)
    before = [p.grad.clone() for p in model.parameters()]
    zero_grad = optimizer.zero_grad if target == "optimizer" else model.zero_grad
    with pytest.raises(ValueError, match=r"zero_grad\(set_to_none=True\) is not supported"):
        zero_grad(set_to_none=True)
    assert all(torch.equal(p.grad, b) for p, b in zip(model.parameters(), before, strict=True))
    zero_grad(set_to_none=False)
    assert all(p.grad is not None and torch.count_nonzero(p.grad) == 0 for p in model.parameters())


# -- state_dict -----------------------------------------------------------------------------------
def assert_same_state_dict(parity, case: str, ours: dict, theirs: dict) -> None:
    """Key for key: top-level keys, each group's keys (in order) and values, the parameter
    indices holding state, each state's keys (in order), tensor shapes and dtypes; values
    within TOL."""
    assert list(ours) == list(theirs) == ["state", "param_groups"]
    assert [list(g) for g in ours["param_groups"]] == [list(g) for g in theirs["param_groups"]]
    assert ours["param_groups"] == theirs["param_groups"]
    assert list(ours["state"]) == list(theirs["state"])
    for index, state in theirs["state"].items():
        assert list(ours["state"][index]) == list(state), index
        for key, expected in state.items():
            actual = ours["state"][index][key]
            assert (actual.shape, actual.dtype) == (expected.shape, expected.dtype), (index, key)
            parity.check(f"{case} state {index} {key}", actual, expected, **TOL)


def stepped_pair(name: str, groups: list[dict], options: dict, steps: int):
    ours, theirs = optimizer_pair(name, options, groups)
    for optimizer in (ours, theirs):
        params, grads = params_of(optimizer.param_groups), torch.Generator().manual_seed(1)
        for _ in range(steps):
            set_random_grads(params, grads)
            optimizer.step()
    return ours, theirs


@pytest.mark.parametrize("steps", [0, 3], ids=["before-any-step", "after-3-steps"])
@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_state_dict_equals_torch_optim_key_for_key(parity, config, steps):
    name, options = config
    ours, theirs = stepped_pair(name, [{"shapes": SHAPES}], options, steps)
    case = f"{config_id(config)} state_dict after {steps}"
    assert_same_state_dict(parity, case, ours.state_dict(), theirs.state_dict())


@pytest.mark.parametrize("name", GROUP_OPTIONS)
def test_state_dict_of_param_groups_equals_torch_optim_key_for_key(parity, name):
    first, second = GROUP_OPTIONS[name]
    groups = [{"shapes": [(3, 2), (3,)], **first}, {"shapes": [(1, 3), (1,)], **second}]
    ours, theirs = stepped_pair(name, groups, {}, 3)
    assert_same_state_dict(parity, f"{name} groups", ours.state_dict(), theirs.state_dict())
    torch_state = {tuple(p.shape): s for p, s in theirs.state.items()}
    for param, state in ours.state.items():  # torch's ``state[param]`` too
        assert list(state) == list(torch_state[tuple(param.shape)])


HANDOVER = [
    ("SGD", {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("Adam", {"lr": 0.02, "weight_decay": 0.05}),
    ("AdamW", {"lr": 0.02, "weight_decay": 0.05}),
    ("RMSprop", {"lr": 0.002, "momentum": 0.8, "centered": True}),
    ("RMSprop", {"lr": 0.002, "momentum": 0.8, "centered": True, "weight_decay": 0.05}),
]


def checkpoint(state_dict: dict) -> dict:
    """Through ``torch.save`` and ``torch.load(weights_only=True)``, as a checkpoint file goes
    (and without aliasing the source's live state, which both optimizers keep updating)."""
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("before", [0, 5], ids=["before-any-step", "after-5-steps"])
@pytest.mark.parametrize("direction", ["custom->torch", "torch->custom", "custom->custom"])
@pytest.mark.parametrize("config", HANDOVER, ids=config_id)
def test_state_dict_hand_over_then_20_steps_equal(parity, config, direction, before):
    """Source steps ``before`` times; a target built with default hyperparameters over a copy of
    the parameters loads its state dict; both then take 20 equal steps and stay equal."""
    name, options = config
    source_side, target_side = direction.split("->")
    shapes = [{"shapes": SHAPES[:2], **options}, {"shapes": SHAPES[2:], **options, "lr": 0.01}]
    source_groups = make_pair(shapes)[source_side == "torch"]
    source = build(source_side, name, source_groups)
    source_params = params_of(source_groups)
    source_grads = torch.Generator().manual_seed(1)
    for _ in range(before):
        set_random_grads(source_params, source_grads)
        source.step()
    parameter = fw.Parameter if target_side == "custom" else torch.nn.Parameter
    target_groups = [
        {"params": [parameter(value(p).clone()) for p in group["params"]]}
        for group in source_groups
    ]
    target = build(target_side, name, target_groups)
    target.load_state_dict(checkpoint(source.state_dict()))
    case = f"{config_id(config)} {direction} after {before}"
    assert_same_state_dict(parity, case, target.state_dict(), source.state_dict())
    target_params = params_of(target_groups)
    target_grads = torch.Generator().manual_seed(2)
    source_grads.manual_seed(2)
    for step in range(STEPS):
        set_random_grads(source_params, source_grads)
        source.step()
        set_random_grads(target_params, target_grads)
        target.step()
        for index, (mine, expected) in enumerate(zip(target_params, source_params, strict=True)):
            parity.check(f"{case} step {step} param {index}", value(mine), value(expected), **TOL)


@pytest.mark.parametrize("options", ADAMW, ids=lambda options: config_id(("AdamW", options)))
def test_adamw_30_steps_equal_torch_optim_adamw(parity, options):
    """AdamW's decay (θ ← θ(1 − γλ) before the Adam step, on the raw gradient) as torch's, over
    30 steps of the same gradients, float64, to 1e-12."""
    ours, theirs = optimizer_pair("AdamW", options)
    grads = {"ours": torch.Generator().manual_seed(1), "theirs": torch.Generator().manual_seed(1)}
    for step in range(30):
        for side, optimizer in (("ours", ours), ("theirs", theirs)):
            set_random_grads(params_of(optimizer.param_groups), grads[side])
            optimizer.step()
        for index, (mine, reference) in enumerate(
            zip(params_of(ours.param_groups), params_of(theirs.param_groups), strict=True)
        ):
            parity.check(f"AdamW{options} step {step} param {index}", value(mine),
                         value(reference), **TOL)  # fmt: skip
    assert ours.param_groups[0]["decoupled_weight_decay"] is True


@pytest.mark.parametrize("target", ["torch AdamW", "torch Adam(decoupled_weight_decay=True)"])
def test_adamw_state_dict_loads_into_torch_adamw_and_decoupled_adam_and_back(parity, target):
    """torch's AdamW is Adam with decoupled_weight_decay=True: ours hands its state to either,
    and takes theirs back, training on equally."""
    ours_groups, torch_groups = make_pair([{"shapes": SHAPES}])
    ours = fw.optim.AdamW(ours_groups, lr=0.02, weight_decay=0.1)
    make = {
        "torch AdamW": lambda groups: torch.optim.AdamW(groups),
        "torch Adam(decoupled_weight_decay=True)": lambda groups: torch.optim.Adam(
            groups, decoupled_weight_decay=True
        ),
    }[target]
    theirs = make(torch_groups)
    grads = torch.Generator().manual_seed(3)
    for _ in range(5):
        set_random_grads(params_of(ours.param_groups), grads)
        ours.step()
    for mine, reference in zip(params_of(ours_groups), params_of(torch_groups), strict=True):
        reference.data.copy_(mine.data)
    theirs.load_state_dict(checkpoint(ours.state_dict()))
    assert_same_state_dict(parity, f"AdamW -> {target}", ours.state_dict(), theirs.state_dict())
    back = fw.optim.AdamW([fw.Parameter(value(p).clone()) for p in params_of(torch_groups)])
    back.load_state_dict(checkpoint(theirs.state_dict()))
    assert_same_state_dict(parity, f"{target} -> AdamW", back.state_dict(), theirs.state_dict())
    for step in range(10):
        for optimizer, seed in ((back, 4), (theirs, 4)):
            set_random_grads(
                params_of(optimizer.param_groups), torch.Generator().manual_seed(seed + step)
            )
            optimizer.step()
    for mine, reference in zip(params_of(back.param_groups), params_of(torch_groups), strict=True):
        parity.check(f"{target} back, after 10 steps", value(mine), value(reference), **TOL)


def test_adamw_takes_no_decoupled_weight_decay_argument_like_torch():
    with pytest.raises(TypeError, match="unexpected keyword argument 'decoupled_weight_decay'"):
        fw.optim.AdamW([fw.Parameter(torch.zeros(2))], decoupled_weight_decay=False)
    with pytest.raises(TypeError, match="unexpected keyword argument 'decoupled_weight_decay'"):
        torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], decoupled_weight_decay=False)
