"""Initialisers against torch.nn.init: with the same seeded generator, bit for bit (torch.equal);
the gain table; Linear's default initialisation; the gains Sequential(init=...) applies."""

from __future__ import annotations

import math

import pytest
import torch

import framework as fw

SQRT5 = math.sqrt(5)

# (function name, keyword arguments): the same call on fw.init and on torch.nn.init.
INITIALIZERS = [
    ("uniform_", {}),
    ("uniform_", {"a": -2.0, "b": 3.0}),
    ("normal_", {}),
    ("normal_", {"mean": 1.0, "std": 0.1}),
    ("xavier_uniform_", {}),
    ("xavier_uniform_", {"gain": 5 / 3}),
    ("xavier_uniform_", {"gain": math.sqrt(2)}),
    ("xavier_normal_", {}),
    ("xavier_normal_", {"gain": 5 / 3}),
    ("xavier_normal_", {"gain": math.sqrt(2)}),
    ("kaiming_uniform_", {}),
    ("kaiming_uniform_", {"a": SQRT5}),
    ("kaiming_uniform_", {"a": 0.2, "mode": "fan_out"}),
    ("kaiming_uniform_", {"nonlinearity": "relu"}),
    ("kaiming_uniform_", {"nonlinearity": "relu", "mode": "fan_out"}),
    ("kaiming_uniform_", {"nonlinearity": "tanh"}),
    ("kaiming_uniform_", {"nonlinearity": "linear"}),
    ("kaiming_uniform_", {"nonlinearity": "sigmoid", "mode": "fan_out"}),
    ("kaiming_normal_", {}),
    ("kaiming_normal_", {"a": SQRT5}),
    ("kaiming_normal_", {"a": 0.2, "mode": "fan_out"}),
    ("kaiming_normal_", {"nonlinearity": "relu"}),
    ("kaiming_normal_", {"nonlinearity": "relu", "mode": "fan_out"}),
    ("kaiming_normal_", {"nonlinearity": "tanh"}),
    ("kaiming_normal_", {"nonlinearity": "selu", "mode": "fan_in"}),
]
SHAPES = [(5, 3), (3, 7), (4, 2, 3)]
DTYPES = [torch.float32, torch.float64]


def call_id(initializer: tuple[str, dict]) -> str:
    name, kwargs = initializer
    args = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in kwargs.items()]
    return f"{name}({','.join(args)})"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda shape: "x".join(map(str, shape)))
@pytest.mark.parametrize("initializer", INITIALIZERS, ids=call_id)
def test_initializer_equals_torch_bit_for_bit(initializer, shape, dtype):
    name, kwargs = initializer
    ours, theirs = torch.empty(shape, dtype=dtype), torch.empty(shape, dtype=dtype)
    ours_generator = torch.Generator().manual_seed(7)
    torch_generator = torch.Generator().manual_seed(7)
    returned = getattr(fw.init, name)(ours, **kwargs, generator=ours_generator)
    getattr(torch.nn.init, name)(theirs, **kwargs, generator=torch_generator)
    assert returned is ours  # in place, like torch
    assert torch.equal(ours, theirs)
    assert torch.equal(ours_generator.get_state(), torch_generator.get_state())  # same draws


def test_zeros_equals_torch():
    ours, theirs = torch.randn(3, 4), torch.randn(3, 4)
    assert fw.init.zeros_(ours) is ours
    assert torch.equal(ours, torch.nn.init.zeros_(theirs))


GAINS = [
    ("linear", None),
    ("conv1d", None),
    ("conv2d", None),
    ("conv3d", None),
    ("conv_transpose1d", None),
    ("conv_transpose2d", None),
    ("conv_transpose3d", None),
    ("sigmoid", None),
    ("tanh", None),
    ("relu", None),
    ("selu", None),
    ("leaky_relu", None),
    ("leaky_relu", 0),
    ("leaky_relu", 0.01),
    ("leaky_relu", 0.2),
    ("leaky_relu", 1),
    ("leaky_relu", 3.5),
]


@pytest.mark.parametrize(("nonlinearity", "param"), GAINS, ids=lambda v: str(v))
def test_calculate_gain_equals_torch(nonlinearity, param):
    expected = torch.nn.init.calculate_gain(nonlinearity, param)
    assert fw.init.calculate_gain(nonlinearity, param) == expected


# -- Linear's default initialisation --------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize(("d_in", "d_out"), [(2, 25), (25, 25), (25, 1), (1, 1)])
def test_linear_default_init_equals_torch_under_manual_seed(d_in, d_out, bias, dtype):
    with torch.random.fork_rng():
        torch.manual_seed(11)
        ours = fw.Linear(d_in, d_out, bias=bias, dtype=dtype)
        torch.manual_seed(11)
        theirs = torch.nn.Linear(d_in, d_out, bias=bias, dtype=dtype)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    for key, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key


def test_linear_reset_parameters_with_generator_equals_torch_nn_init():
    ours = fw.Linear(6, 4)
    ours.reset_parameters(generator=torch.Generator().manual_seed(3))
    generator = torch.Generator().manual_seed(3)
    weight = torch.nn.init.kaiming_uniform_(torch.empty(4, 6), a=SQRT5, generator=generator)
    bias = torch.nn.init.uniform_(
        torch.empty(4), -1 / math.sqrt(6), 1 / math.sqrt(6), generator=generator
    )
    assert torch.equal(ours.weight.data, weight)
    assert torch.equal(ours.bias.data, bias)


def test_sequential_default_init_equals_torch_sequential_under_manual_seed():
    with torch.random.fork_rng():
        torch.manual_seed(4)
        ours = fw.Sequential(fw.Linear(2, 25), fw.ReLU(), fw.Linear(25, 1), fw.Sigmoid())
        torch.manual_seed(4)
        theirs = torch.nn.Sequential(
            torch.nn.Linear(2, 25), torch.nn.ReLU(), torch.nn.Linear(25, 1), torch.nn.Sigmoid()
        )
    for key, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key


# -- Sequential(init=...) applies the gain of the following activation ----------------------------
# activation: (framework module, the (nonlinearity, param) whose gain its Linear should get)
ACTIVATIONS = {
    "relu": (fw.ReLU, ("relu", None)),
    "tanh": (fw.Tanh, ("tanh", None)),
    "leaky_relu": (fw.LeakyReLU, ("leaky_relu", 0.01)),
    "leaky_relu-slope0.2": (lambda: fw.LeakyReLU(0.2), ("leaky_relu", 0.2)),
    "elu": (fw.ELU, ("relu", None)),  # no ELU gain in torch: ReLU's, as documented
    "sigmoid": (fw.Sigmoid, ("sigmoid", None)),
}


def expected_weight(scheme: str, shape, nonlinearity: str, param, generator) -> torch.Tensor:
    """What torch.nn.init draws for ``scheme`` with the gain of ``(nonlinearity, param)``."""
    weight = torch.empty(shape)
    init = torch.nn.init
    if scheme == "xavier_uniform":
        return init.xavier_uniform_(weight, init.calculate_gain(nonlinearity, param), generator)
    if scheme == "xavier_normal":
        return init.xavier_normal_(weight, init.calculate_gain(nonlinearity, param), generator)
    a = 0 if param is None else param  # kaiming's gain is calculate_gain(nonlinearity, a)
    if scheme == "kaiming_uniform":
        return init.kaiming_uniform_(weight, a, "fan_in", nonlinearity, generator)
    return init.kaiming_normal_(weight, a, "fan_in", nonlinearity, generator)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("scheme", [s for s in fw.INIT_SCHEMES if s != "default"])
def test_sequential_init_applies_gain_of_following_activation(scheme, activation):
    factory, (nonlinearity, param) = ACTIVATIONS[activation]
    # The last Linear has no activation after it: gain 1 ("linear").
    model = fw.Sequential(
        fw.Linear(3, 6),
        factory(),
        fw.Linear(6, 5),
        factory(),
        fw.Linear(5, 2),
        init=scheme,
        generator=torch.Generator().manual_seed(9),
    )
    generator = torch.Generator().manual_seed(9)
    following = [(nonlinearity, param), (nonlinearity, param), ("linear", None)]
    for layer, (name, p) in zip(model[::2], following, strict=True):
        assert torch.equal(
            layer.weight.data, expected_weight(scheme, layer.weight.shape, name, p, generator)
        )
        assert torch.count_nonzero(layer.bias.data) == 0


def test_sequential_default_init_with_generator_equals_torch_linear_init():
    model = fw.Sequential(
        fw.Linear(3, 6), fw.Tanh(), fw.Linear(6, 1), generator=torch.Generator().manual_seed(5)
    )
    generator = torch.Generator().manual_seed(5)
    for layer in (model[0], model[2]):
        d_out, d_in = layer.weight.shape
        weight = torch.nn.init.kaiming_uniform_(
            torch.empty(d_out, d_in), a=SQRT5, generator=generator
        )
        bound = 1 / math.sqrt(d_in)
        bias = torch.nn.init.uniform_(torch.empty(d_out), -bound, bound, generator=generator)
        assert torch.equal(layer.weight.data, weight)
        assert torch.equal(layer.bias.data, bias)


# -- Conv2d: torch's default, and Sequential(init=...) with the gain of the following activation --
def test_conv2d_reset_parameters_with_generator_equals_torch_nn_init():
    layer = fw.Conv2d(3, 4, (2, 3))
    layer.reset_parameters(generator=torch.Generator().manual_seed(3))
    generator = torch.Generator().manual_seed(3)
    weight = torch.nn.init.kaiming_uniform_(torch.empty(4, 3, 2, 3), a=SQRT5, generator=generator)
    bound = 1 / math.sqrt(3 * 2 * 3)  # fan_in counts the receptive field
    bias = torch.nn.init.uniform_(torch.empty(4), -bound, bound, generator=generator)
    assert torch.equal(layer.weight.data, weight)
    assert torch.equal(layer.bias.data, bias)


@pytest.mark.parametrize("scheme", fw.INIT_SCHEMES)
def test_sequential_init_treats_conv2d_like_linear(scheme):
    """Each Conv2d gets the gain of the activation after it (across BatchNorm and pooling, up
    to the next Conv2d/Linear: gain 1 if none comes first), its fans from the 4-d weight; the
    Linear head gets gain 1."""
    model = fw.Sequential(
        fw.Conv2d(2, 4, 3, padding=1),
        fw.BatchNorm2d(4),
        fw.ReLU(),
        fw.MaxPool2d(2),
        fw.Conv2d(4, 3, 1),  # no activation before the next Conv2d
        fw.Conv2d(3, 3, (2, 3)),
        fw.LeakyReLU(0.2),
        fw.Flatten(),
        fw.Linear(3 * 1 * 1, 2),
        init=scheme,
        generator=torch.Generator().manual_seed(9),
    )
    generator = torch.Generator().manual_seed(9)
    following = [("relu", None), ("linear", None), ("leaky_relu", 0.2), ("linear", None)]
    layers = (model[0], model[4], model[5], model[8])
    for layer, (name, p) in zip(layers, following, strict=True):
        if scheme == "default":  # the layer's own torch initialisation, from the generator
            fan_in = layer.weight.data[0].numel()
            weight = torch.nn.init.kaiming_uniform_(
                torch.empty(layer.weight.shape), a=SQRT5, generator=generator
            )
            bound = 1 / math.sqrt(fan_in)
            bias = torch.nn.init.uniform_(
                torch.empty(layer.bias.shape), -bound, bound, generator=generator
            )
            assert torch.equal(layer.bias.data, bias)
        else:
            weight = expected_weight(scheme, layer.weight.shape, name, p, generator)
            assert torch.count_nonzero(layer.bias.data) == 0
        assert torch.equal(layer.weight.data, weight)
    assert torch.equal(model[1].weight.data, torch.ones(4))  # BatchNorm keeps ones and zeros
