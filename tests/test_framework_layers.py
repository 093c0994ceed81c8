"""Every layer and loss against its torch.nn counterpart: the forward values, and the hand-written
backward (input and parameter gradients) against torch.autograd, in float64 to 1e-10, over random
shapes and values and at the points where the derivative changes. Then the same backward against
central differences, with no torch.autograd at all; the in-place variants of the activations
against their own forward/backward and torch.

Tables pair each framework op with its torch op (LAYERS, LOSSES, CROSS_ENTROPY, INPLACE); the
parametrized checks run over them, and PARITY / INPLACE_PARITY list them for the coverage check
of tests/test_framework_contract.py.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from functools import partial

import pytest
import torch
from gradcheck import central_difference
from hypothesis import given, settings
from hypothesis import strategies as st
from module_check import EXAMPLES, example, is_criterion, public_modules

import framework as fw

F64 = torch.float64
SETTINGS = settings(max_examples=40)  # the rest: conftest's profile

# name: (framework layer, torch.nn layer), each built for input width d_in and output width d_out.
LayerPair = Callable[[int, int], tuple[fw.Module, torch.nn.Module]]
LAYERS: dict[str, LayerPair] = {
    "linear": lambda i, o: (fw.Linear(i, o, dtype=F64), torch.nn.Linear(i, o, dtype=F64)),
    "linear-bias_false": lambda i, o: (
        fw.Linear(i, o, bias=False, dtype=F64),
        torch.nn.Linear(i, o, bias=False, dtype=F64),
    ),
    "relu": lambda i, o: (fw.ReLU(), torch.nn.ReLU()),
    "tanh": lambda i, o: (fw.Tanh(), torch.nn.Tanh()),
    "sigmoid": lambda i, o: (fw.Sigmoid(), torch.nn.Sigmoid()),
    "leaky_relu": lambda i, o: (fw.LeakyReLU(), torch.nn.LeakyReLU()),
    "leaky_relu-slope0.2": lambda i, o: (fw.LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)),
    "leaky_relu-slope3": lambda i, o: (
        fw.LeakyReLU(negative_slope=3.0),
        torch.nn.LeakyReLU(negative_slope=3.0),
    ),
    "elu": lambda i, o: (fw.ELU(), torch.nn.ELU()),
    "elu-alpha0.5": lambda i, o: (fw.ELU(0.5), torch.nn.ELU(0.5)),
    "elu-alpha2.5": lambda i, o: (fw.ELU(alpha=2.5), torch.nn.ELU(alpha=2.5)),
    "gelu": lambda i, o: (fw.GELU(), torch.nn.GELU()),
    "gelu-tanh": lambda i, o: (fw.GELU(approximate="tanh"), torch.nn.GELU(approximate="tanh")),
}
ACTIVATIONS = [name for name in LAYERS if not name.startswith("linear")]

# name: (framework criterion, torch.nn criterion)
LOSSES: dict[str, Callable[[], tuple[fw.Loss, torch.nn.Module]]] = {
    "mse-mean": lambda: (fw.MSELoss(), torch.nn.MSELoss()),
    "mse-sum": lambda: (fw.MSELoss(reduction="sum"), torch.nn.MSELoss(reduction="sum")),
    "bce-mean": lambda: (fw.BCELoss(), torch.nn.BCELoss()),
    "bce-sum": lambda: (fw.BCELoss(reduction="sum"), torch.nn.BCELoss(reduction="sum")),
}
# reduction: (framework criterion, torch.nn criterion) of class logits and class indices
CROSS_ENTROPY: dict[str, Callable[[], tuple[fw.Loss, torch.nn.Module]]] = {
    "mean": lambda: (fw.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()),
    "sum": lambda: (
        fw.CrossEntropyLoss(reduction="sum"),
        torch.nn.CrossEntropyLoss(reduction="sum"),
    ),
}
# The activations with their own in-place variants (_forward_inplace / _backward_inplace, which
# Sequential uses): checked against their out-of-place forward/backward and torch.
INPLACE: dict[str, LayerPair] = {name: LAYERS[name] for name in ("relu", "tanh", "sigmoid")}

# For test_framework_contract's coverage check: name -> factory of (ours, torch's).
PARITY: dict[str, Callable[[], tuple[fw.Module, torch.nn.Module]]] = {
    **{name: partial(factory, 3, 2) for name, factory in LAYERS.items()},
    **LOSSES,
    **{f"cross_entropy-{name}": factory for name, factory in CROSS_ENTROPY.items()},
}
INPLACE_PARITY = {name: partial(factory, 3, 2) for name, factory in INPLACE.items()}

# Values: the kinks (0 and −0 exactly, and values closer to 0 than any step) come up often.
KINKS = st.sampled_from([0.0, -0.0, 5e-324, -5e-324, 1e-300, -1e-300, 1e-16, -1e-16])
REALS = st.one_of(KINKS, st.floats(-30, 30, allow_nan=False))
# Probabilities: exactly 0 and 1, and the values next to them where BCE's clamps act.
EDGES = st.sampled_from([0.0, 1.0, 5e-324, 1e-300, 1e-13, 1e-12, 1e-6, 1 - 1e-6, 1 - 2**-53])
PROBABILITIES = st.one_of(EDGES, st.floats(0, 1))


@st.composite
def matrices(draw, elements, rows=None, cols=None) -> torch.Tensor:
    """A float64 (rows, cols) tensor; rows and cols drawn in [1, 6] unless given."""
    rows = rows or draw(st.integers(1, 6))
    cols = cols or draw(st.integers(1, 6))
    values = draw(st.lists(elements, min_size=rows * cols, max_size=rows * cols))
    return torch.tensor(values, dtype=F64).reshape(rows, cols)


@st.composite
def prediction_target_pairs(draw, elements) -> tuple[torch.Tensor, torch.Tensor]:
    prediction = draw(matrices(elements))
    target = draw(matrices(elements, *prediction.shape))
    return prediction, target


def layer_pair(name: str, d_in: int, d_out: int) -> tuple[fw.Module, torch.nn.Module]:
    """Our layer and torch's, torch's loaded with our (random) initial state."""
    ours, theirs = LAYERS[name](d_in, d_out)
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


def check_layer(parity, name: str, x: torch.Tensor, d_out: int, seed: int) -> None:
    """Forward, input gradient and parameter gradients of our layer equal torch's."""
    ours, theirs = layer_pair(name, x.shape[1], d_out)
    y = ours(x)
    grad_output = torch.randn(y.shape, dtype=F64, generator=torch.Generator().manual_seed(seed))
    grad_input = ours.backward(grad_output)

    x_ref = x.clone().requires_grad_()
    y_ref = theirs(x_ref)
    y_ref.backward(grad_output)

    parity.check(f"{name} forward", y, y_ref)
    parity.check(f"{name} grad_input", grad_input, x_ref.grad)
    torch_params = dict(theirs.named_parameters())
    assert [n for n, _ in ours.named_parameters()] == list(torch_params)
    for param_name, param in ours.named_parameters():
        parity.check(f"{name} grad {param_name}", param.grad, torch_params[param_name].grad)


def check_loss(parity, name: str, prediction: torch.Tensor, target: torch.Tensor) -> None:
    """Loss value and dL/dprediction of our criterion equal torch's."""
    ours, theirs = LOSSES[name]()
    loss = ours(prediction, target)
    grad = ours.backward()

    prediction_ref = prediction.clone().requires_grad_()
    loss_ref = theirs(prediction_ref, target)
    loss_ref.backward()

    assert loss.shape == () and loss.dtype == F64
    parity.check(f"{name} loss", loss, loss_ref)
    parity.check(f"{name} grad_prediction", grad, prediction_ref.grad)


# -- against torch.autograd, random shapes and values ---------------------------------------------
@pytest.mark.parametrize("name", LAYERS)
@SETTINGS
@given(x=matrices(REALS), d_out=st.integers(1, 6), seed=st.integers(0, 2**31))
def test_layer_forward_and_backward_equal_torch(parity, name, x, d_out, seed):
    check_layer(parity, name, x, d_out, seed)


@pytest.mark.parametrize("name", [name for name in LOSSES if name.startswith("mse")])
@SETTINGS
@given(pair=prediction_target_pairs(REALS))
def test_mse_loss_and_gradient_equal_torch(parity, name, pair):
    check_loss(parity, name, *pair)


@pytest.mark.parametrize("name", [name for name in LOSSES if name.startswith("bce")])
@SETTINGS
@given(pair=prediction_target_pairs(PROBABILITIES))
def test_bce_loss_and_gradient_equal_torch(parity, name, pair):
    check_loss(parity, name, *pair)


# -- against torch.autograd, exactly at the kinks -------------------------------------------------
KINK_INPUT = torch.tensor(
    [
        [0.0, -0.0, 5e-324, -5e-324, 1e-300, -1e-300],
        [1e-16, -1e-16, 1.0, -1.0, 40.0, -40.0],
    ],
    dtype=F64,
)
# d activation / dx at exactly 0, as torch.autograd defines it.
DERIVATIVE_AT_ZERO = {
    "relu": 0.0,
    "leaky_relu": 0.01,
    "leaky_relu-slope0.2": 0.2,
    "leaky_relu-slope3": 3.0,
    "elu": 1.0,
    "elu-alpha0.5": 0.5,
    "elu-alpha2.5": 2.5,
    "tanh": 1.0,
    "sigmoid": 0.25,
    "gelu": 0.5,  # Φ(0) + 0 · φ(0)
    "gelu-tanh": 0.5,
}


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_at_kinks_equals_torch(parity, name):
    check_layer(parity, name, KINK_INPUT, d_out=1, seed=0)
    layer, _ = layer_pair(name, 6, 1)
    layer(KINK_INPUT)
    derivative = layer.backward(torch.ones_like(KINK_INPUT))
    assert derivative[0, 0].item() == DERIVATIVE_AT_ZERO[name]
    assert derivative[0, 1].item() == DERIVATIVE_AT_ZERO[name]  # -0.0 too


@pytest.mark.parametrize("variant", ["backward", "in-place"])
def test_relu_gradient_at_nan_zero_and_signed_zero_equals_torch(variant):
    """torch's ReLU gradient is 0 where its output is ≤ 0, so a NaN input passes g on (the
    order-swap of stack's ReLU and MaxPool2d relies on it); both of our backward variants."""
    x = torch.tensor([math.nan, 0.0, -0.0, -1.0, 2.0, -math.inf, math.inf], dtype=torch.float64)
    grad = torch.tensor([5.0, 1.0, -1.0, 2.0, 3.0, 4.0, -6.0], dtype=torch.float64)
    layer = fw.ReLU()
    y = layer(x.clone())
    ours = layer.backward(grad.clone()) if variant == "backward" else None
    if ours is None:
        layer(x.clone())
        ours = layer._backward_inplace(grad.clone())
    x_ref = x.clone().requires_grad_()
    y_ref = torch.relu(x_ref)
    y_ref.backward(grad)
    torch.testing.assert_close(y, y_ref.detach(), atol=0, rtol=0, equal_nan=True)
    torch.testing.assert_close(ours, x_ref.grad, atol=0, rtol=0)


BCE_PREDICTIONS = [
    0.0,
    5e-324,
    1e-300,
    1e-13,
    1e-12,
    1e-6,
    0.5,
    1 - 1e-6,
    1 - 1e-12,
    1 - 2**-53,
    1.0,
]
BCE_TARGETS = [0.0, 0.25, 1.0]


@pytest.mark.parametrize("name", [name for name in LOSSES if name.startswith("bce")])
def test_bce_at_and_near_0_and_1_equals_torch(parity, name):
    predictions = torch.tensor(BCE_PREDICTIONS, dtype=F64)
    targets = torch.tensor(BCE_TARGETS, dtype=F64)
    # Every prediction against every target, as a (P·T, 1) column.
    prediction = predictions.repeat_interleave(len(BCE_TARGETS)).unsqueeze(1)
    target = targets.repeat(len(BCE_PREDICTIONS)).unsqueeze(1)
    check_loss(parity, name, prediction, target)
    loss, _ = LOSSES[name]()
    assert math.isfinite(loss(prediction, target).item())  # log clamped at −100: never inf
    assert torch.isfinite(loss.backward()).all()


# -- the in-place variants -----------------------------------------------------------------------
@pytest.mark.parametrize("backward", ["backward", "_backward_inplace"])
@pytest.mark.parametrize("forward", ["forward", "_forward_inplace"])
@pytest.mark.parametrize("name", INPLACE)
@SETTINGS
@given(x=matrices(REALS), seed=st.integers(0, 2**31))
def test_inplace_variants_equal_forward_backward_and_torch(
    parity, name, forward, backward, x, seed
):
    """Each mix Sequential makes (an activation runs forward in place after a Linear, backward
    in place under a private gradient; either without the other) gives the values of the
    out-of-place forward and backward, and torch's; the caller's input of an out-of-place
    forward is left alone (framework.module's contract, 5)."""
    ours, theirs = layer_pair(name, x.shape[1], 1)
    reference, _ = layer_pair(name, x.shape[1], 1)
    grad_output = torch.randn(x.shape, dtype=F64, generator=torch.Generator().manual_seed(seed))
    given_x, given_grad = x.clone(), grad_output.clone()  # what the variants may overwrite
    y = getattr(ours, forward)(given_x).clone()  # the in-place backward may overwrite it
    grad_input = getattr(ours, backward)(given_grad)
    x_ref = x.clone().requires_grad_()
    y_ref = theirs(x_ref)
    y_ref.backward(grad_output)
    case = f"{name} {forward}/{backward}"
    parity.check(f"{case} forward", y, reference(x), atol=0, rtol=0)
    parity.check(f"{case} backward", grad_input, reference.backward(grad_output), atol=1e-15)
    parity.check(f"{case} forward vs torch", y, y_ref)
    parity.check(f"{case} backward vs torch", grad_input, x_ref.grad)
    if forward == "forward":
        assert torch.equal(given_x, x)


# -- against central differences: no torch.autograd -----------------------------------------------
def away_from_kinks(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Random values with 0.05 <= |x| <= 3, so x ± h never crosses a kink."""
    magnitude = torch.empty(shape, dtype=F64).uniform_(0.05, 3, generator=generator)
    sign = torch.randint(0, 2, shape, generator=generator).to(F64) * 2 - 1
    return magnitude * sign


FD_TOLERANCE = {"atol": 1e-7, "rtol": 1e-6}


@pytest.mark.parametrize("name", LAYERS)
def test_layer_backward_equals_central_differences(name):
    generator = torch.Generator().manual_seed(1)
    layer = LAYERS[name](4, 3)[0]
    x = away_from_kinks((5, 4), generator)
    y = layer(x)
    grad_output = torch.randn(y.shape, dtype=F64, generator=generator)
    grad_input = layer.backward(grad_output)

    def objective() -> float:  # L = Σ y ⊙ g, so dL/dy = g
        return (layer(x) * grad_output).sum().item()

    torch.testing.assert_close(grad_input, central_difference(objective, x), **FD_TOLERANCE)
    for param_name, param in layer.named_parameters():
        numeric = central_difference(objective, param.data)
        torch.testing.assert_close(param.grad, numeric, **FD_TOLERANCE, msg=param_name)


@pytest.mark.parametrize("name", LOSSES)
def test_loss_backward_equals_central_differences(name):
    generator = torch.Generator().manual_seed(2)
    criterion = LOSSES[name]()[0]
    if name.startswith("bce"):  # inside (0, 1), away from the clamps
        prediction = torch.empty(6, 2, dtype=F64).uniform_(0.05, 0.95, generator=generator)
        target = torch.rand(6, 2, dtype=F64, generator=generator).round()
    else:
        prediction = torch.randn(6, 2, dtype=F64, generator=generator)
        target = torch.randn(6, 2, dtype=F64, generator=generator)
    criterion(prediction, target)
    grad = criterion.backward()
    numeric = central_difference(lambda: criterion(prediction, target).item(), prediction)
    torch.testing.assert_close(grad, numeric, **FD_TOLERANCE)


# -- CrossEntropyLoss: class logits and int64 class indices ---------------------------------------
@st.composite
def logits_and_classes(draw, elements) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C) float64 logits and (N,) int64 classes in [0, C), N and C in [1, 6]."""
    logits = draw(matrices(elements))
    n, classes = logits.shape
    target = draw(st.lists(st.integers(0, classes - 1), min_size=n, max_size=n))
    return logits, torch.tensor(target, dtype=torch.int64)


def check_cross_entropy(parity, reduction: str, logits: torch.Tensor, target: torch.Tensor):
    ours, theirs = CROSS_ENTROPY[reduction]()
    loss = ours(logits, target)
    grad = ours.backward()
    logits_ref = logits.clone().requires_grad_()
    loss_ref = theirs(logits_ref, target)
    loss_ref.backward()
    assert loss.shape == () and loss.dtype == F64
    parity.check(f"cross_entropy-{reduction} loss", loss, loss_ref)
    parity.check(f"cross_entropy-{reduction} grad_prediction", grad, logits_ref.grad)
    return loss, grad


@pytest.mark.parametrize("reduction", CROSS_ENTROPY)
@SETTINGS
@given(pair=logits_and_classes(st.one_of(KINKS, st.floats(-1e4, 1e4, allow_nan=False))))
def test_cross_entropy_loss_and_gradient_equal_torch(parity, reduction, pair):
    check_cross_entropy(parity, reduction, *pair)


@pytest.mark.parametrize("reduction", CROSS_ENTROPY)
def test_cross_entropy_is_stable_for_huge_and_infinite_logits(parity, reduction):
    """exp(1e300) overflows: the log-sum-exp subtracts each row's maximum first."""
    logits = torch.tensor(
        [
            [1e300, -1e300, 0.0],
            [1e308, 1e308, 1e308],  # equal logits: log 3
            [-math.inf, 2.0, 1.0],  # a class that can never win
            [5e4, 5e4 + 1, -5e4],
            [0.0, 0.0, 0.0],
        ],
        dtype=F64,
    )
    target = torch.tensor([0, 2, 1, 1, 0])
    loss, grad = check_cross_entropy(parity, reduction, logits, target)
    assert math.isfinite(loss.item()) and torch.isfinite(grad).all()
    torch.testing.assert_close(grad.sum(1), torch.zeros(5, dtype=F64), atol=1e-15, rtol=0)


def test_cross_entropy_single_class_has_zero_loss_and_gradient():
    criterion = fw.CrossEntropyLoss()
    assert criterion(torch.randn(4, 1, dtype=F64), torch.zeros(4, dtype=torch.int64)) == 0
    assert torch.equal(criterion.backward(), torch.zeros(4, 1, dtype=F64))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_backward_equals_central_differences(reduction):
    generator = torch.Generator().manual_seed(5)
    logits = torch.randn(6, 4, dtype=F64, generator=generator) * 3
    target = torch.randint(0, 4, (6,), generator=generator)
    criterion = fw.CrossEntropyLoss(reduction=reduction)
    criterion(logits, target)
    grad = criterion.backward()
    numeric = central_difference(lambda: criterion(logits, target).item(), logits)
    torch.testing.assert_close(grad, numeric, **FD_TOLERANCE)


# -- torch's keyword names ------------------------------------------------------------------------
def test_every_public_layer_and_loss_has_an_example():
    """module_check.EXAMPLES holds one of each public class (a new layer must add one)."""
    assert [cls.__name__ for cls in public_modules() if cls not in EXAMPLES] == []


@pytest.mark.parametrize("cls", public_modules(), ids=lambda cls: cls.__name__)
def test_layers_and_losses_take_torchs_keyword_names(cls):
    """torch's own tests call ``layer(input=x)`` and ``criterion(input=y, target=t)`` (the names
    of ``torch.nn.Linear.forward(self, input)``, ``MSELoss.forward(self, input, target)``): the
    same call works on every public layer and loss and is the positional call."""
    names = ("input", "target") if is_criterion(cls) else ("input",)
    twin = getattr(torch.nn, cls.__name__, None)
    if twin is not None:  # torch's class of the same name takes exactly these names
        assert tuple(inspect.signature(twin.forward).parameters)[1:] == names
    module, args = example(cls)
    positional = module(*args)
    module, args = example(cls)  # afresh: the same weights and dropout mask
    keyword = module(**dict(zip(names, args, strict=True)))
    assert torch.equal(keyword, positional)
    if is_criterion(cls):
        assert module.backward().shape == args[0].shape
    else:
        assert module.backward(torch.ones_like(keyword)).shape == args[0].shape


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_forward_and_backward_equal_torch_to_1e12_float64(parity, approximate):
    """Both of torch's GELUs over their whole range: where tanh and erf saturate (|x| up to 40),
    around 0, at subnormals and signed zeros."""
    x = torch.cat(
        [
            torch.linspace(-40, 40, 8001, dtype=F64),
            torch.tensor([0.0, -0.0, 5e-324, -5e-324, 1e-300, -1e-300, 1e-16, -1e-16], dtype=F64),
        ]
    )
    grad_output = torch.randn(x.shape, dtype=F64, generator=torch.Generator().manual_seed(0))
    ours = fw.GELU(approximate=approximate)
    y, grad_input = ours(x), None
    grad_input = ours.backward(grad_output)
    x_ref = x.clone().requires_grad_()
    y_ref = torch.nn.GELU(approximate=approximate)(x_ref)
    y_ref.backward(grad_output)
    parity.check(f"gelu-{approximate} forward", y, y_ref, atol=1e-12, rtol=0)
    parity.check(f"gelu-{approximate} grad_input", grad_input, x_ref.grad, atol=1e-12, rtol=0)


def test_gelu_refuses_an_unknown_approximation_like_torch():
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh'"):
        fw.GELU(approximate="erf")
    with pytest.raises(RuntimeError, match="approximate argument must be either none or tanh"):
        torch.nn.GELU(approximate="erf")(torch.zeros(1))  # torch refuses it at the first call
    assert repr(fw.GELU(approximate="tanh")) == repr(torch.nn.GELU(approximate="tanh"))
