"""Bad input gets a clear error at the boundary: each case states the call and the message."""

from __future__ import annotations

import math

import pytest
import torch

import framework as fw


def mlp() -> fw.Sequential:
    return fw.Sequential(fw.Linear(2, 4), fw.ReLU(), fw.Linear(4, 1), fw.Sigmoid())


# -- shapes ---------------------------------------------------------------------------------------
def test_linear_shape_mismatch_names_layer_and_both_shapes():
    with pytest.raises(
        ValueError,
        match=r"Linear\(in_features=3, out_features=2, bias=True\): "
        r"expected input of shape \(N, 3\), got \(4, 5\)",
    ):
        fw.Linear(3, 2)(torch.zeros(4, 5))


def test_linear_rejects_1d_input():
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 3\), got \(3,\)"):
        fw.Linear(3, 2)(torch.zeros(3))


def test_linear_rejects_dtype_mismatch():
    with pytest.raises(TypeError, match=r"input dtype torch.float64 does not match weight dtype"):
        fw.Linear(3, 2)(torch.zeros(4, 3, dtype=torch.float64))


def test_linear_backward_rejects_grad_output_shape_mismatch():
    layer = fw.Linear(3, 2)
    layer(torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"expected grad_output of shape \(4, 2\), got \(4, 3\)"):
        layer.backward(torch.zeros(4, 3))


def test_sequential_shape_mismatch_prefixes_layer_index():
    model = fw.Sequential(fw.Linear(2, 4), fw.ReLU(), fw.Linear(5, 1))
    with pytest.raises(
        ValueError,
        match=r"^Sequential layer \(2\): Linear\(in_features=5, out_features=1, bias=True\): "
        r"expected input of shape \(N, 5\), got \(3, 4\)",
    ):
        model(torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"^Sequential layer \(0\): .*got \(3, 3\)"):
        model(torch.zeros(3, 3))


@pytest.mark.parametrize("loss", [fw.MSELoss, fw.BCELoss], ids=["mse", "bce"])
def test_loss_rejects_prediction_target_shape_mismatch(loss):
    # torch would broadcast (4, 1) against (4,) to (4, 4) with only a warning.
    with pytest.raises(
        ValueError, match=r"prediction shape \(4, 1\) and target shape \(4,\) differ"
    ):
        loss()(torch.full((4, 1), 0.5), torch.ones(4))


# -- BCE's domain ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("prediction", "target", "message"),
    [
        (0.5, 1.5, r"every target must lie in \[0, 1\], got values in \[0.5, 1.5\]"),
        (0.5, -0.5, r"every target must lie in \[0, 1\], got values in \[-0.5, 0.5\]"),
        (1.5, 1.0, r"every prediction must lie in \[0, 1\].*\(apply a Sigmoid"),
        (-0.1, 0.0, r"every prediction must lie in \[0, 1\]"),
    ],
    ids=["target_above_1", "target_below_0", "prediction_above_1", "prediction_below_0"],
)
def test_bce_rejects_values_outside_0_1(prediction, target, message):
    predictions = torch.tensor([[0.5], [prediction]])
    targets = torch.tensor([[0.5], [target]])
    with pytest.raises(ValueError, match=message):
        fw.BCELoss()(predictions, targets)


@pytest.mark.parametrize("reduction", ["none", "avg", None])
def test_loss_rejects_unknown_reduction(reduction):
    with pytest.raises(ValueError, match=r"reduction must be one of \('mean', 'sum'\)"):
        fw.MSELoss(reduction=reduction)


# -- backward before forward ----------------------------------------------------------------------
MODULES = {
    "linear": lambda: fw.Linear(2, 3),
    "relu": fw.ReLU,
    "tanh": fw.Tanh,
    "sigmoid": fw.Sigmoid,
    "leaky_relu": fw.LeakyReLU,
    "elu": fw.ELU,
    "sequential": mlp,
}


@pytest.mark.parametrize("name", MODULES)
def test_backward_before_forward_says_so(name):
    with pytest.raises(RuntimeError, match=r"backward\(\) called before forward\(\)"):
        MODULES[name]().backward(torch.ones(1, 3))


@pytest.mark.parametrize("loss", [fw.MSELoss, fw.BCELoss], ids=["mse", "bce"])
def test_loss_backward_before_forward_says_so(loss):
    with pytest.raises(RuntimeError, match=r"Loss.backward\(\) called before forward\(\)"):
        loss().backward()


# -- hyperparameters ------------------------------------------------------------------------------
BAD_HYPERPARAMETERS = [
    ("SGD", {"lr": -0.1}, r"Invalid lr: -0.1"),
    ("SGD", {"lr": math.nan}, r"Invalid lr: nan"),
    ("SGD", {"lr": "0.1"}, r"lr must be a number"),
    ("SGD", {"momentum": -0.9}, r"Invalid momentum: -0.9"),
    ("SGD", {"dampening": -1.0}, r"Invalid dampening"),
    ("SGD", {"weight_decay": -1e-4}, r"Invalid weight_decay"),
    ("SGD", {"nesterov": True}, r"nesterov momentum requires momentum > 0"),
    ("SGD", {"nesterov": True, "momentum": 0.9, "dampening": 0.1}, r"nesterov.*dampening = 0"),
    ("Adam", {"lr": -1.0}, r"Invalid lr"),
    (
        "Adam",
        {"betas": (1.0, 0.999)},
        r"Invalid beta1 \(betas\[0\]\): 1.0 \(must be in \[0.0, 1.0\)\)",
    ),
    ("Adam", {"betas": (-0.1, 0.999)}, r"Invalid beta1 \(betas\[0\]\): -0.1"),
    ("Adam", {"betas": (0.9, 1.0)}, r"Invalid beta2 \(betas\[1\]\): 1.0"),
    ("Adam", {"betas": (0.9, 1.5)}, r"Invalid beta2"),
    ("Adam", {"betas": (0.9,)}, r"betas must be a pair"),
    ("Adam", {"eps": -1e-8}, r"Invalid eps: -1e-08"),
    ("Adam", {"weight_decay": -1.0}, r"Invalid weight_decay"),
    ("RMSprop", {"lr": -0.01}, r"Invalid lr"),
    ("RMSprop", {"alpha": -0.5}, r"Invalid alpha: -0.5"),
    ("RMSprop", {"eps": -1.0}, r"Invalid eps"),
    ("RMSprop", {"momentum": -0.1}, r"Invalid momentum"),
    ("RMSprop", {"weight_decay": -0.1}, r"Invalid weight_decay"),
]


@pytest.mark.parametrize(
    ("name", "options", "message"),
    BAD_HYPERPARAMETERS,
    ids=[f"{n}({','.join(f'{k}={v}' for k, v in o.items())})" for n, o, _ in BAD_HYPERPARAMETERS],
)
def test_invalid_hyperparameter_raises_value_error_naming_it(name, options, message):
    with pytest.raises(ValueError, match=message):
        getattr(fw.optim, name)(mlp().parameters(), **options)


NON_FINITE = [
    (name, argument, bad)
    for name, arguments in {
        "SGD": ["lr", "momentum", "dampening", "weight_decay"],
        "Adam": ["lr", "beta1", "beta2", "eps", "weight_decay"],
        "RMSprop": ["lr", "alpha", "eps", "weight_decay", "momentum"],
    }.items()
    for argument in arguments
    for bad in (math.inf, math.nan)
]


@pytest.mark.parametrize(
    ("name", "argument", "bad"), NON_FINITE, ids=[f"{n}({a}={b})" for n, a, b in NON_FINITE]
)
def test_non_finite_hyperparameter_raises_value_error_naming_it(name, argument, bad):
    betas = {"beta1": (bad, 0.999), "beta2": (0.9, bad)}
    options = {"betas": betas[argument]} if argument in betas else {argument: bad}
    named = {"beta1": r"beta1 \(betas\[0\]\)", "beta2": r"beta2 \(betas\[1\]\)"}
    with pytest.raises(ValueError, match=rf"Invalid {named.get(argument, argument)}: {bad}"):
        getattr(fw.optim, name)(mlp().parameters(), **options)


def test_invalid_hyperparameter_in_a_param_group_is_rejected():
    model = mlp()
    groups = [{"params": model[0].parameters(), "lr": -1.0}, {"params": model[2].parameters()}]
    with pytest.raises(ValueError, match=r"Invalid lr: -1.0"):
        fw.optim.SGD(groups, lr=0.1)


def test_optimizer_rejects_empty_duplicate_and_foreign_parameters():
    model = mlp()
    with pytest.raises(ValueError, match="empty parameter list"):
        fw.optim.SGD([])
    with pytest.raises(ValueError, match="more than one parameter group"):
        fw.optim.SGD([model[0].weight, model[0].weight])
    with pytest.raises(TypeError, match="can only optimize framework Parameters, got Tensor"):
        fw.optim.SGD([torch.zeros(2)])
    with pytest.raises(TypeError, match=r"unknown optimizer option\(s\): \['betas'\]"):
        fw.optim.SGD([{"params": model.parameters(), "betas": (0.9, 0.99)}])


TORCH_ONLY = [
    (name, key) for name in ("SGD", "Adam", "RMSprop") for key in getattr(fw.optim, name).torch_only
]


@pytest.mark.parametrize(("name", "key"), TORCH_ONLY, ids=[f"{n}({k}=True)" for n, k in TORCH_ONLY])
def test_torch_only_switch_is_accepted_off_and_refused_on(name, key):
    model = mlp()
    for off in (False, None):
        getattr(fw.optim, name)([{"params": model.parameters(), key: off}])
    with pytest.raises(ValueError, match=rf"{name} does not implement torch.optim's {key}=True"):
        getattr(fw.optim, name)([{"params": model.parameters(), key: True}])


# -- state dicts ----------------------------------------------------------------------------------
def torch_state(name: str, params, steps: int = 1, **options) -> dict:
    """The state dict of torch.optim's ``name`` over ``params`` (torch tensors) after ``steps``."""
    params = [torch.nn.Parameter(p.clone()) for p in params]
    optimizer = getattr(torch.optim, name)(params, **options)
    for _ in range(steps):
        for param in params:
            param.grad = torch.ones_like(param)
        optimizer.step()
    return optimizer.state_dict()


def test_optimizer_load_state_dict_refuses_another_number_of_groups():
    model = mlp()
    optimizer = fw.optim.SGD([{"params": model[0].parameters()}, {"params": model[2].parameters()}])
    state = torch_state("SGD", [p.data for p in model.parameters()])
    with pytest.raises(ValueError, match=r"has 1 parameter group\(s\), this optimizer has 2"):
        optimizer.load_state_dict(state)


def test_optimizer_load_state_dict_refuses_another_number_of_parameters():
    optimizer = fw.optim.Adam(mlp().parameters())
    state = torch_state("Adam", [torch.zeros(4, 2), torch.zeros(4)])
    with pytest.raises(ValueError, match=r"group 0 has 2 parameters, this optimizer's has 4"):
        optimizer.load_state_dict(state)


def test_optimizer_load_state_dict_refuses_state_of_another_shape_and_changes_nothing():
    model = mlp()
    optimizer = fw.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model[0].weight.grad.fill_(1.0)
    optimizer.step()
    before = optimizer.state_dict()
    shapes = [(2, 4), (4,), (1, 4), (1,)]  # the first transposed
    state = torch_state("SGD", [torch.zeros(s) for s in shapes], lr=0.5, momentum=0.5)
    with pytest.raises(
        ValueError,
        match=r"'momentum_buffer' of parameter 0 has shape \(2, 4\), the parameter has \(4, 2\)",
    ):
        optimizer.load_state_dict(state)
    after = optimizer.state_dict()
    assert after["param_groups"] == before["param_groups"]
    assert torch.equal(after["state"][0]["momentum_buffer"], before["state"][0]["momentum_buffer"])


@pytest.mark.parametrize(("name", "key"), TORCH_ONLY, ids=[f"{n}({k}=True)" for n, k in TORCH_ONLY])
def test_optimizer_load_state_dict_refuses_a_torch_only_switch_on(name, key):
    model = mlp()
    state = torch_state(name, [p.data for p in model.parameters()], steps=0)
    state["param_groups"][0][key] = True
    with pytest.raises(ValueError, match=rf"{name} does not implement torch.optim's {key}=True"):
        getattr(fw.optim, name)(model.parameters()).load_state_dict(state)


def test_optimizer_load_state_dict_refuses_another_optimizers_state():
    model = mlp()
    state = torch_state("Adam", [p.data for p in model.parameters()])
    with pytest.raises(
        ValueError, match=r"group 0 lacks SGD option\(s\) \['dampening', 'momentum', 'nesterov'\]"
    ):
        fw.optim.SGD(model.parameters()).load_state_dict(state)


def test_optimizer_load_state_dict_refuses_state_keys_its_group_does_not_have():
    model = mlp()
    state = torch_state("RMSprop", [p.data for p in model.parameters()], centered=True)
    state["param_groups"][0]["centered"] = False  # grad_avg no longer belongs
    with pytest.raises(
        ValueError,
        match=r"parameter 0 has state \['grad_avg', 'square_avg', 'step'\], "
        r"expected \['square_avg', 'step'\]",
    ):
        fw.optim.RMSprop(model.parameters()).load_state_dict(state)


def test_optimizer_load_state_dict_refuses_a_non_finite_hyperparameter():
    model = mlp()
    state = torch_state("SGD", [p.data for p in model.parameters()], steps=0)
    state["param_groups"][0]["lr"] = math.inf
    with pytest.raises(ValueError, match=r"Invalid lr: inf \(must be finite\)"):
        fw.optim.SGD(model.parameters()).load_state_dict(state)


def test_load_state_dict_missing_keys():
    state = mlp().state_dict()
    del state["2.bias"]
    with pytest.raises(RuntimeError, match=r"missing keys \['2.bias'\], unexpected keys \[\]"):
        mlp().load_state_dict(state)


def test_load_state_dict_unexpected_keys():
    state = {**mlp().state_dict(), "4.weight": torch.zeros(1, 1)}
    with pytest.raises(RuntimeError, match=r"missing keys \[\], unexpected keys \['4.weight'\]"):
        mlp().load_state_dict(state)


def test_load_state_dict_non_strict_ignores_missing_keys():
    model, source = mlp(), mlp()
    state = source.state_dict()
    del state["2.bias"]
    before = model[2].bias.data.clone()
    model.load_state_dict(state, strict=False)
    assert torch.equal(model[0].weight.data, source[0].weight.data)
    assert torch.equal(model[2].bias.data, before)


def test_load_state_dict_wrong_shape():
    state = {**mlp().state_dict(), "0.weight": torch.zeros(2, 4)}
    with pytest.raises(
        ValueError,
        match=r"size mismatch for 0.weight: checkpoint has \(2, 4\), this model has \(4, 2\)",
    ):
        mlp().load_state_dict(state)


# -- devices and dtypes ---------------------------------------------------------------------------
def test_optimizer_step_after_a_parameter_changed_shape_raises():
    model = mlp()
    optimizer = fw.optim.Adam(model.parameters())
    model[2].bias.data, model[2].bias.grad = torch.zeros(2), torch.zeros(2)
    with pytest.raises(
        RuntimeError,
        match=r"parameter 3 of the group changed shape from \(1,\) to \(2,\) after the optimizer",
    ):
        optimizer.step()


def test_module_to_rejects_integer_dtype():
    with pytest.raises(TypeError, match=r"only accepts floating point dtypes, got torch.int64"):
        mlp().to(dtype=torch.int64)


# -- constructors and init ------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [0, -1, 2.0, True])
def test_linear_rejects_non_positive_int_features(bad):
    with pytest.raises(ValueError, match=rf"in_features must be a positive int, got {bad!r}"):
        fw.Linear(bad, 2)


def test_sequential_rejects_non_module_and_unknown_init():
    with pytest.raises(TypeError, match=r"argument 1 is ReLU, not a Module"):
        fw.Sequential(fw.Linear(2, 2), torch.nn.ReLU())  # a torch.nn layer by mistake
    with pytest.raises(ValueError, match=r"init must be one of default, xavier_uniform.*'he'"):
        fw.Sequential(fw.Linear(2, 2), init="he")


def test_init_rejects_unknown_nonlinearity_mode_and_1d_tensor():
    with pytest.raises(ValueError, match=r"Unsupported nonlinearity 'swish'"):
        fw.init.calculate_gain("swish")
    with pytest.raises(ValueError, match=r"negative_slope True not a valid number"):
        fw.init.calculate_gain("leaky_relu", True)
    with pytest.raises(ValueError, match=r"mode 'fan_avg' not supported"):
        fw.init.kaiming_uniform_(torch.empty(2, 2), mode="fan_avg")
    with pytest.raises(ValueError, match=r"fewer than 2 dimensions"):
        fw.init.xavier_uniform_(torch.empty(3))


# -- backward shapes, loss operands, torch-style conveniences ------------------------------------
@pytest.mark.parametrize(
    "activation",
    [fw.ReLU(), fw.Tanh(), fw.LeakyReLU(0.2), fw.ELU(0.5), fw.Sigmoid()],
    ids=lambda m: type(m).__name__,
)
def test_activation_backward_rejects_grad_output_shape_mismatch(activation):
    activation(torch.zeros(8, 3))
    name = type(activation).__name__
    with pytest.raises(ValueError, match=rf"{name}\(.*\): expected grad_output of shape \(8, 3\)"):
        activation.backward(torch.ones(1, 1))


def test_sequential_backward_names_the_layer_that_refused_the_gradient():
    model = mlp()
    model(torch.zeros(8, 2))
    with pytest.raises(
        ValueError, match=r"Sequential layer \(3\) backward: Sigmoid\(\): .*\(8, 1\)"
    ):
        model.backward(torch.ones(1, 1))


@pytest.mark.parametrize("criterion", [fw.MSELoss(), fw.BCELoss()], ids=["mse", "bce"])
def test_loss_rejects_dtype_mismatch_naming_both(criterion):
    prediction = torch.full((4, 1), 0.5)
    with pytest.raises(TypeError, match=r"torch.float32 and target dtype torch.float64 differ"):
        criterion(prediction, torch.ones(4, 1, dtype=torch.float64))


@pytest.mark.parametrize("criterion", [fw.MSELoss(), fw.BCELoss()], ids=["mse", "bce"])
def test_loss_rejects_empty_batch(criterion):
    with pytest.raises(ValueError, match="empty batch"):
        criterion(torch.zeros(0, 1), torch.zeros(0, 1))


def test_to_accepts_positional_dtype_and_device_like_torch():
    layer = fw.Linear(2, 3).to(torch.float64)
    assert layer.weight.dtype == torch.float64 and layer.weight.grad.dtype == torch.float64
    layer.to("cpu", torch.float32)
    assert layer.bias.dtype == torch.float32
    with pytest.raises(TypeError, match="floating point"):
        layer.to(torch.int64)


def test_load_state_dict_non_strict_returns_missing_and_unexpected_keys():
    state = dict(mlp().state_dict())
    del state["2.bias"]
    state["9.weight"] = torch.zeros(1)
    assert mlp().load_state_dict(state, strict=False) == (["2.bias"], ["9.weight"])


def test_sequential_slice_is_a_sequential_of_the_same_modules():
    model = mlp()
    head = model[:2]
    assert isinstance(head, fw.Sequential) and head[0] is model[0]
    assert list(head.state_dict()) == ["0.weight", "0.bias"]
