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


# -- state dicts ----------------------------------------------------------------------------------
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
def test_optimizer_step_after_model_to_float64_raises():
    model = mlp()  # float32
    optimizer = fw.optim.Adam(model.parameters())
    model.to(dtype=torch.float64)  # replaces every tensor: the optimizer's views are gone
    with pytest.raises(RuntimeError, match=r"tensor was replaced after the optimizer was created"):
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
    "sequential": (mlp, (4, 2)),
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


@pytest.mark.parametrize("loss", [fw.MSELoss, fw.BCELoss], ids=["mse", "bce"])
def test_loss_second_backward_without_new_forward_raises(loss):
    criterion = loss()
    prediction, target = torch.full((4, 1), 0.25), torch.ones(4, 1)
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
