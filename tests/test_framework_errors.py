"""Bad input gets a clear error at the boundary: each case states the call and the message."""

from __future__ import annotations

import math
import re

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
@pytest.mark.parametrize("how", ["check=True", "validate", "stacked check=True"])
def test_bce_rejects_values_outside_0_1(prediction, target, message, how):
    """The range check reads two values back, so it is opt-in (a training step makes none):
    ``check=True`` in every forward, or ``BCELoss.validate`` once (at evaluation)."""
    predictions = torch.tensor([[0.5], [prediction]])
    targets = torch.tensor([[0.5], [target]])
    with pytest.raises(ValueError, match=message):
        if how == "check=True":
            fw.BCELoss(check=True)(predictions, targets)
        elif how == "validate":
            fw.BCELoss.validate(predictions, targets)
        else:
            fw.StackedLoss(fw.BCELoss(check=True))(predictions.expand(3, 2, 1), targets)


@pytest.mark.parametrize("prediction", [1.5, -0.1], ids=["above_1", "below_0"])
def test_bce_without_check_gives_nan_for_a_prediction_outside_0_1(prediction):
    """Without the opt-in check nothing is read back: the log of a prediction outside [0, 1]
    makes the loss NaN (what a diverged model gives), so the mistake still shows."""
    loss = fw.BCELoss()(torch.tensor([[0.5], [prediction]]), torch.tensor([[0.5], [1.0]]))
    assert torch.isnan(loss)


def test_bce_check_accepts_the_closed_interval_and_nan():
    fw.BCELoss.validate(torch.tensor([0.0, 1.0, 0.5]), torch.tensor([1.0, 0.0, 0.25]))
    # NaN passes: a diverged model gets a NaN loss, not an error.
    loss = fw.BCELoss(check=True)(torch.tensor([math.nan, 0.5]), torch.tensor([1.0, 0.0]))
    assert torch.isnan(loss)


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
    "conv2d": lambda: fw.Conv2d(1, 3, 1),
    "maxpool2d": lambda: fw.MaxPool2d(1),
    "flatten": fw.Flatten,
    "batchnorm1d": lambda: fw.BatchNorm1d(3),
    "batchnorm2d": lambda: fw.BatchNorm2d(3),
    "dropout": fw.Dropout,
    "sequential": mlp,
}


@pytest.mark.parametrize("name", MODULES)
def test_backward_before_forward_says_so(name):
    with pytest.raises(RuntimeError, match=r"backward\(\) called before forward\(\)"):
        MODULES[name]().backward(torch.ones(1, 3))


@pytest.mark.parametrize(
    "loss", [fw.MSELoss, fw.BCELoss, fw.CrossEntropyLoss], ids=["mse", "bce", "cross_entropy"]
)
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
    (name, key)
    for name in (n for n in fw.optim.__all__ if n != "Optimizer")
    for key in getattr(fw.optim, name).torch_only
    if key not in getattr(fw.optim, name).implemented
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


# -- a second backward without a new forward ------------------------------------------------------
# torch refuses to backward twice through a freed graph; each of our layers frees what its forward
# cached when its backward consumes it, so the second call fails instead of doubling gradients.
SECOND_BACKWARD = {
    "linear": (lambda: fw.Linear(2, 3), (4, 2)),
    "relu": (fw.ReLU, (4, 3)),
    "tanh": (fw.Tanh, (4, 3)),
    "sigmoid": (fw.Sigmoid, (4, 3)),
    "leaky_relu": (fw.LeakyReLU, (4, 3)),
    "elu": (fw.ELU, (4, 3)),
    "conv2d": (lambda: fw.Conv2d(2, 3, 3, padding=1), (4, 2, 5, 5)),
    "maxpool2d": (lambda: fw.MaxPool2d(2), (4, 2, 5, 5)),
    "flatten": (fw.Flatten, (4, 2, 5, 5)),
    "batchnorm1d": (lambda: fw.BatchNorm1d(3), (4, 3)),
    "batchnorm2d": (lambda: fw.BatchNorm2d(2), (4, 2, 5, 5)),
    "batchnorm2d-eval": (lambda: fw.BatchNorm2d(2).eval(), (4, 2, 5, 5)),
    "dropout": (lambda: fw.Dropout(0.5), (4, 3)),
    "dropout-eval": (lambda: fw.Dropout(0.5).eval(), (4, 3)),
    "dropout-p0": (lambda: fw.Dropout(0.0), (4, 3)),
    "sequential": (mlp, (4, 2)),
    "sequential-cnn": (
        lambda: fw.Sequential(
            fw.Conv2d(1, 2, 3), fw.BatchNorm2d(2), fw.ReLU(), fw.MaxPool2d(2), fw.Flatten()
        ),
        (4, 1, 6, 6),
    ),
}


def last_layer(module: fw.Module) -> fw.Module:
    """The layer whose backward runs first (and so refuses the second backward)."""
    return last_layer(module[-1]) if isinstance(module, fw.Sequential) else module


@pytest.mark.parametrize("name", SECOND_BACKWARD)
def test_second_backward_without_new_forward_raises_naming_the_layer(name):
    factory, shape = SECOND_BACKWARD[name]
    module = factory()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    grad_output = torch.ones_like(module(x))
    module.backward(grad_output)
    grads = {key: param.grad.clone() for key, param in module.named_parameters()}
    with pytest.raises(
        RuntimeError,
        match=re.escape(repr(last_layer(module)))
        + r".*backward called twice without a new forward \(call the model again first\)",
    ):
        module.backward(grad_output)
    for key, param in module.named_parameters():  # nothing was added by the refused call
        assert torch.equal(param.grad, grads[key]), key
    module(x)  # a new forward makes a backward legal again
    module.backward(grad_output)


@pytest.mark.parametrize(
    "loss", [fw.MSELoss, fw.BCELoss, fw.CrossEntropyLoss], ids=["mse", "bce", "cross_entropy"]
)
def test_loss_second_backward_without_new_forward_raises(loss):
    criterion = loss()
    prediction, target = torch.full((4, 1), 0.25), torch.ones(4, 1)
    if loss is fw.CrossEntropyLoss:
        prediction, target = torch.randn(4, 3), torch.tensor([0, 2, 1, 1])
    criterion(prediction, target)
    first = criterion.backward()
    with pytest.raises(
        RuntimeError, match=rf"{loss.__name__}\(\): backward called twice without a new forward"
    ):
        criterion.backward()
    criterion(prediction, target)
    assert torch.equal(criterion.backward(), first)


# -- non-finite and invalid layer hyperparameters -------------------------------------------------
BAD_LAYER_ARGUMENTS = {
    "LeakyReLU(nan)": (lambda: fw.LeakyReLU(math.nan), r"LeakyReLU: negative_slope must be finite"),
    "LeakyReLU(inf)": (lambda: fw.LeakyReLU(math.inf), r"negative_slope must be finite, got inf"),
    "LeakyReLU(-inf)": (lambda: fw.LeakyReLU(-math.inf), r"negative_slope must be finite"),
    "LeakyReLU('0.1')": (lambda: fw.LeakyReLU("0.1"), r"negative_slope must be a real number"),
    "LeakyReLU(True)": (lambda: fw.LeakyReLU(True), r"negative_slope must be a real number"),
    "ELU(nan)": (lambda: fw.ELU(alpha=math.nan), r"ELU: alpha must be finite, got nan"),
    "ELU(inf)": (lambda: fw.ELU(math.inf), r"ELU: alpha must be finite, got inf"),
    "ELU(None)": (lambda: fw.ELU(None), r"ELU: alpha must be a real number, got None"),
    "BatchNorm1d(eps=nan)": (
        lambda: fw.BatchNorm1d(3, eps=math.nan),
        r"BatchNorm1d: eps must be finite, got nan",
    ),
    "BatchNorm2d(eps=inf)": (
        lambda: fw.BatchNorm2d(3, eps=math.inf),
        r"BatchNorm2d: eps must be finite, got inf",
    ),
    "BatchNorm2d(eps=-1e-5)": (
        lambda: fw.BatchNorm2d(3, eps=-1e-5),
        r"BatchNorm2d: eps must be in \(0.0, inf\], got -1e-05",
    ),
    "BatchNorm1d(momentum=nan)": (
        lambda: fw.BatchNorm1d(3, momentum=math.nan),
        r"BatchNorm1d: momentum must be finite, got nan",
    ),
    "BatchNorm2d(momentum=inf)": (
        lambda: fw.BatchNorm2d(3, momentum=math.inf),
        r"momentum must be finite, got inf",
    ),
    "BatchNorm2d(momentum=1.5)": (
        lambda: fw.BatchNorm2d(3, momentum=1.5),
        r"BatchNorm2d: momentum must be in \[0, 1\], got 1.5",
    ),
    "BatchNorm2d(momentum=-0.1)": (
        lambda: fw.BatchNorm2d(3, momentum=-0.1),
        r"momentum must be in \[0, 1\], got -0.1",
    ),
    "BatchNorm2d(momentum='0.1')": (
        lambda: fw.BatchNorm2d(3, momentum="0.1"),
        r"momentum must be a real number, got '0.1'",
    ),
    "BatchNorm2d(0)": (lambda: fw.BatchNorm2d(0), r"num_features must be a positive int, got 0"),
    "Dropout(nan)": (lambda: fw.Dropout(math.nan), r"Dropout: p must be finite, got nan"),
    "Dropout(inf)": (lambda: fw.Dropout(math.inf), r"Dropout: p must be finite, got inf"),
    "Dropout(1.5)": (lambda: fw.Dropout(1.5), r"Dropout: p must be in \[0.0, 1.0\], got 1.5"),
    "Dropout(-0.1)": (lambda: fw.Dropout(-0.1), r"p must be in \[0.0, 1.0\], got -0.1"),
    "Dropout(True)": (lambda: fw.Dropout(True), r"p must be a real number, got True"),
    "Conv2d(kernel_size=0)": (
        lambda: fw.Conv2d(1, 1, 0),
        r"Conv2d: kernel_size must be a positive int or pair of them, got 0",
    ),
    "Conv2d(kernel_size=(1,2,3))": (
        lambda: fw.Conv2d(1, 1, (1, 2, 3)),
        r"kernel_size must be a positive int or pair",
    ),
    "Conv2d(stride=(1,0))": (lambda: fw.Conv2d(1, 1, 3, stride=(1, 0)), r"stride must be a"),
    "Conv2d(padding=-1)": (
        lambda: fw.Conv2d(1, 1, 3, padding=-1),
        r"padding must be a non-negative int or pair of them, got -1",
    ),
    "Conv2d(padding='same')": (lambda: fw.Conv2d(1, 1, 3, padding="same"), r"padding must be"),
    "Conv2d(0, 1, 3)": (lambda: fw.Conv2d(0, 1, 3), r"in_channels must be a positive int"),
    "MaxPool2d(0)": (lambda: fw.MaxPool2d(0), r"MaxPool2d: kernel_size must be a positive int"),
    "MaxPool2d(2, stride=0)": (lambda: fw.MaxPool2d(2, 0), r"MaxPool2d: stride must be"),
    "Flatten(1.5)": (lambda: fw.Flatten(1.5), r"Flatten: start_dim must be an int, got 1.5"),
}


@pytest.mark.parametrize("name", BAD_LAYER_ARGUMENTS)
def test_invalid_layer_hyperparameter_raises_value_error_naming_it(name):
    factory, message = BAD_LAYER_ARGUMENTS[name]
    with pytest.raises(ValueError, match=message):
        factory()


# -- Sequential's re-raised errors keep the original as their cause -------------------------------
def test_sequential_errors_keep_the_layer_error_as_cause():
    model = fw.Sequential(fw.Linear(2, 4), fw.ReLU(), fw.Linear(5, 1))
    with pytest.raises(ValueError) as forward_error:
        model(torch.zeros(3, 2))
    cause = forward_error.value.__cause__
    assert isinstance(cause, ValueError)
    assert str(forward_error.value) == f"Sequential layer (2): {cause}"

    model = mlp()
    model(torch.zeros(8, 2))
    with pytest.raises(ValueError) as backward_error:
        model.backward(torch.ones(1, 1))
    assert isinstance(backward_error.value.__cause__, ValueError)
    assert (
        str(backward_error.value)
        == f"Sequential layer (3) backward: {backward_error.value.__cause__}"
    )

    model.backward(torch.ones(8, 1))
    with pytest.raises(RuntimeError) as second_error:
        model.backward(torch.ones(8, 1))
    assert isinstance(second_error.value.__cause__, RuntimeError)
    assert "backward called twice" in str(second_error.value.__cause__)


# -- convolutional layers: shapes -----------------------------------------------------------------
def test_conv2d_wrong_channel_count_names_layer_and_both_shapes():
    with pytest.raises(
        ValueError,
        match=r"^Conv2d\(3, 2, kernel_size=\(3, 3\), stride=\(1, 1\)\): expected input of shape "
        r"\(N, 3, H, W\), got \(4, 5, 8, 8\)$",
    ):
        fw.Conv2d(3, 2, 3)(torch.zeros(4, 5, 8, 8))
    with pytest.raises(
        ValueError, match=r"expected input of shape \(N, 3, H, W\), got \(3, 8, 8\)"
    ):
        fw.Conv2d(3, 2, 3)(torch.zeros(3, 8, 8))  # unbatched input: torch accepts it, we do not


def test_input_smaller_than_the_kernel_is_refused():
    with pytest.raises(
        ValueError,
        match=r"Conv2d\(1, 1, kernel_size=\(3, 3\).*\): input of spatial size \(2, 4\) is smaller "
        r"than the kernel \(3, 3\)",
    ):
        fw.Conv2d(1, 1, 3)(torch.zeros(1, 1, 2, 4))
    with pytest.raises(
        ValueError,
        match=r"spatial size \(2, 2\) \(padded: \(4, 4\)\) is smaller than the kernel \(5, 5\)",
    ):
        fw.Conv2d(1, 1, 5, padding=1)(torch.zeros(1, 1, 2, 2))
    with pytest.raises(
        ValueError,
        match=r"MaxPool2d.*: input of spatial size \(1, 5\) is smaller than the kernel \(2, 2\)",
    ):
        fw.MaxPool2d(2)(torch.zeros(1, 1, 1, 5))


def test_sequential_cnn_names_the_layer_with_the_wrong_channels():
    model = fw.Sequential(fw.Conv2d(1, 4, 3), fw.ReLU(), fw.Conv2d(5, 2, 3))
    with pytest.raises(
        ValueError,
        match=r"^Sequential layer \(2\): Conv2d\(5, 2, .*\): expected input of shape "
        r"\(N, 5, H, W\), got \(2, 4, 6, 6\)",
    ):
        model(torch.zeros(2, 1, 8, 8))


def test_conv2d_rejects_dtype_mismatch_and_wrong_grad_output():
    layer = fw.Conv2d(1, 2, 3)
    with pytest.raises(TypeError, match=r"input dtype torch.float64 does not match weight dtype"):
        layer(torch.zeros(1, 1, 4, 4, dtype=torch.float64))
    layer(torch.zeros(2, 1, 4, 4))
    with pytest.raises(
        ValueError, match=r"expected grad_output of shape \(2, 2, 2, 2\).*got \(2, 2, 3, 3\)"
    ):
        layer.backward(torch.zeros(2, 2, 3, 3))


def test_flatten_rejects_dimensions_the_input_has_not():
    with pytest.raises(
        ValueError,
        match=r"Flatten\(start_dim=2, end_dim=-1\): cannot flatten input of shape \(3, 4\)",
    ):
        fw.Flatten(2)(torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"cannot flatten input of shape \(3, 4, 5\)"):
        fw.Flatten(2, 1)(torch.zeros(3, 4, 5))


# -- BatchNorm: shapes ----------------------------------------------------------------------------
def test_batchnorm_wrong_channel_count_or_rank_names_layer_and_both_shapes():
    with pytest.raises(
        ValueError,
        match=r"^BatchNorm1d\(3, eps=1e-05, .*\): expected input of shape \(N, 3\) or \(N, 3, L\), "
        r"got \(4, 2\)$",
    ):
        fw.BatchNorm1d(3)(torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"\(N, 3\) or \(N, 3, L\), got \(4, 3, 2, 2\)"):
        fw.BatchNorm1d(3)(torch.zeros(4, 3, 2, 2))
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3, .*\(N, 3, H, W\), got \(4, 3\)"):
        fw.BatchNorm2d(3)(torch.zeros(4, 3))


def test_batchnorm_needs_more_than_one_value_per_channel_in_training():
    with pytest.raises(
        ValueError,
        match=r"more than 1 value per channel when training, got input of shape \(1, 3\)",
    ):
        fw.BatchNorm1d(3)(torch.zeros(1, 3))
    assert fw.BatchNorm1d(3).eval()(torch.zeros(1, 3)).shape == (1, 3)  # eval: running stats


def test_batchnorm_rejects_dtype_mismatch():
    with pytest.raises(
        TypeError, match=r"input dtype torch.float64 does not match the layer's dtype torch.float32"
    ):
        fw.BatchNorm2d(2)(torch.zeros(2, 2, 3, 3, dtype=torch.float64))


# -- CrossEntropyLoss: operands -------------------------------------------------------------------
BAD_CROSS_ENTROPY = {
    "target_above_range": (
        torch.zeros(3, 4),
        torch.tensor([0, 4, 1]),
        ValueError,
        r"CrossEntropyLoss: every target must be a class index in \[0, 4\), got values in \[0, 4\]",
    ),
    "negative_target": (
        torch.zeros(3, 4),
        torch.tensor([0, -1, 1]),
        ValueError,
        r"class index in \[0, 4\), got values in \[-1, 1\]",
    ),
    "int32_target": (
        torch.zeros(3, 4),
        torch.tensor([0, 1, 2], dtype=torch.int32),
        TypeError,
        r"target must hold class indices of dtype torch.int64, got torch.int32 \(convert with "
        r"target.long\(\)",
    ),
    "probability_target": (
        torch.zeros(3, 4),
        torch.full((3, 4), 0.25),
        TypeError,
        r"got torch.float32 .*class probabilities are not supported",
    ),
    "column_target": (
        torch.zeros(3, 4),
        torch.zeros(3, 1, dtype=torch.long),
        ValueError,
        r"target shape \(3, 1\) does not match prediction shape \(3, 4\): expected \(3,\)",
    ),
    "short_target": (
        torch.zeros(3, 4),
        torch.zeros(2, dtype=torch.long),
        ValueError,
        r"target shape \(2,\) does not match",
    ),
    "1d_prediction": (
        torch.zeros(4),
        torch.tensor(1),
        ValueError,
        r"expected prediction \(class logits\) of shape \(N, C\), got \(4,\)",
    ),
    "4d_prediction": (
        torch.zeros(2, 3, 2, 2),
        torch.zeros(2, 2, 2, dtype=torch.long),
        ValueError,
        r"of shape \(N, C\), got \(2, 3, 2, 2\)",
    ),
    "integer_prediction": (
        torch.zeros(3, 4, dtype=torch.long),
        torch.zeros(3, dtype=torch.long),
        TypeError,
        r"prediction must be floating point, got torch.int64",
    ),
    "empty_batch": (
        torch.zeros(0, 4),
        torch.zeros(0, dtype=torch.long),
        ValueError,
        r"empty batch",
    ),
}


@pytest.mark.parametrize("name", BAD_CROSS_ENTROPY)
def test_cross_entropy_rejects_bad_operands_clearly(name):
    """(The class-index range is checked with ``check=True``: it reads values back.)"""
    prediction, target, error, message = BAD_CROSS_ENTROPY[name]
    with pytest.raises(error, match=message):
        fw.CrossEntropyLoss(check=True)(prediction, target)


@pytest.mark.parametrize("target", [[0, 4, 1], [0, -1, 1]], ids=["above_range", "negative"])
def test_cross_entropy_without_check_still_refuses_bad_indices_on_cpu(target):
    """Without the opt-in check, torch's gather refuses an index out of range on the CPU (its
    own message; on a GPU a device-side assert)."""
    with pytest.raises(RuntimeError, match="out of bounds"):
        fw.CrossEntropyLoss()(torch.zeros(3, 4), torch.tensor(target))
