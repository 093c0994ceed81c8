"""Conv2d, MaxPool2d, Flatten and Dropout against torch.nn: forward values and every hand-written
gradient (input, weight, bias) against torch.autograd in float64 over random shapes, channels,
kernels, strides, paddings and memory layouts (hypothesis); then central differences on small
cases; max-pooling ties, infinities and NaNs routed as torch routes them; dropout's masks equal
torch's from the same generator state.

Every pair compared with torch.nn is built by one of the factories of PARITY (also read by the
coverage check of tests/test_framework_contract.py)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from module_check import check_central_differences, compare_with_autograd, in_layout

import framework as fw
from bench.harness.reference import SameMaskDropout, torch_module

F64 = torch.float64
SETTINGS = settings(max_examples=30)  # the rest: conftest's profile
LAYOUTS = st.permutations(range(4)).map(tuple)  # memory order of a 4-d input, outermost first


def random(shape, seed: int, dtype=F64) -> torch.Tensor:
    return torch.randn(shape, dtype=dtype, generator=torch.Generator().manual_seed(seed))


def twin(ours: fw.Module) -> torch.nn.Module:
    """bench.harness.reference's torch.nn twin of one layer, holding the layer's state."""
    theirs = torch_module(ours)
    theirs.load_state_dict(ours.state_dict())
    return theirs


def conv2d_pair(
    in_channels: int = 2, out_channels: int = 3, kernel_size=3, *args, dtype=F64, **options
) -> tuple[fw.Conv2d, torch.nn.Module]:
    """Our Conv2d (torch's arguments) and its torch.nn twin holding the same weights."""
    ours = fw.Conv2d(in_channels, out_channels, kernel_size, *args, dtype=dtype, **options)
    return ours, twin(ours)


def maxpool2d_pair(*args, **options) -> tuple[fw.MaxPool2d, torch.nn.MaxPool2d]:
    """fw.MaxPool2d and torch.nn.MaxPool2d of the same arguments (default: kernel_size 2)."""
    args = args or (2,)
    return fw.MaxPool2d(*args, **options), torch.nn.MaxPool2d(*args, **options)


def flatten_pair(*args) -> tuple[fw.Flatten, torch.nn.Flatten]:
    return fw.Flatten(*args), torch.nn.Flatten(*args)


def dropout_pair(
    p: float = 0.5, inplace: bool = False, generator: torch.Generator | None = None
) -> tuple[fw.Dropout, torch.nn.Dropout]:
    """Our Dropout (drawing from ``generator``) and torch.nn.Dropout (torch's global one)."""
    return fw.Dropout(p, inplace, generator=generator), torch.nn.Dropout(p, inplace)


# What this module compares with torch.nn: name -> factory of (ours, torch's).
PARITY: dict[str, Callable[..., tuple[fw.Module, torch.nn.Module]]] = {
    "conv2d": conv2d_pair,
    "maxpool2d": maxpool2d_pair,
    "flatten": flatten_pair,
    "dropout": dropout_pair,
}


# -- Conv2d -----------------------------------------------------------------------------------
@st.composite
def conv_cases(draw) -> dict:
    """Channels, kernel, stride, padding (ints or pairs), bias, a batch whose (padded) size
    fits the kernel, the input's and gradient's memory layouts, a seed."""
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    height = draw(st.integers(max(1, kernel[0] - 2 * padding[0]), 7))
    width = draw(st.integers(max(1, kernel[1] - 2 * padding[1]), 7))

    def arg(pair):  # torch accepts an int for a square pair: so must we
        return pair[0] if pair[0] == pair[1] and draw(st.booleans()) else pair

    return {
        "in_channels": draw(st.integers(1, 3)),
        "out_channels": draw(st.integers(1, 3)),
        "kernel_size": arg(kernel),
        "stride": arg(stride),
        "padding": arg(padding),
        "bias": draw(st.booleans()),
        "input_shape": (draw(st.integers(1, 3)), None, height, width),
        "layout": draw(LAYOUTS),
        "grad_layout": draw(LAYOUTS),
        "seed": draw(st.integers(0, 2**31)),
    }


def conv_pair(case: dict) -> tuple[fw.Conv2d, torch.nn.Module]:
    options = {key: case[key] for key in ("kernel_size", "stride", "padding", "bias")}
    return conv2d_pair(case["in_channels"], case["out_channels"], **options)


@SETTINGS
@given(case=conv_cases())
def test_conv2d_forward_and_gradients_equal_torch(parity, case):
    ours, theirs = conv_pair(case)
    n, _, h, w = case["input_shape"]
    x = in_layout(random((n, case["in_channels"], h, w), case["seed"]), case["layout"])
    y = ours(x)
    grad_output = in_layout(random(y.shape, case["seed"] + 1), case["grad_layout"])
    compare_with_autograd(parity, "conv2d", ours, theirs, x, grad_output)


# Named cases: 1×1, non-overlapping windows (one-copy col2im), overlapping strided windows,
# padding wider than the kernel (outputs that read only zeros), a window that skips the edge.
CONV_CASES = {
    "1x1": (2, 3, 1, 1, 0, (4, 5)),
    "k2-s2": (2, 3, 2, 2, 0, (6, 6)),
    "k3-s2-p1": (3, 2, 3, 2, 1, (7, 6)),
    "k1-p2": (1, 2, 1, 1, 2, (3, 3)),
    "k2x3-s3x1-p0x1": (2, 2, (2, 3), (3, 1), (0, 1), (7, 5)),
    "k3-whole-input": (2, 4, 3, 1, 0, (3, 3)),
}


@pytest.mark.parametrize("name", CONV_CASES)
def test_conv2d_named_cases_equal_torch(parity, name):
    c, o, kernel, stride, padding, (h, w) = CONV_CASES[name]
    ours, theirs = conv2d_pair(c, o, kernel, stride, padding)
    compare_with_autograd(parity, f"conv2d {name}", ours, theirs, random((3, c, h, w), 5))


# A stacked stride-1 convolution takes dL/dx without a patch gradient
# (conv._grad_input_stride1), Conv2d through col2im: (in, out, kernel, padding, (H, W)); 1×1
# unpadded reads the gradient as it is, the others through the zero-widened copy; the digits
# CNN's 3×3 padding 1 among them.
STRIDE1_CASES = {
    "k3-p1": (2, 3, 3, 1, (4, 5)),
    "k1-p0": (2, 3, 1, 0, (3, 4)),
    "k1-p1": (1, 2, 1, 1, (3, 3)),
    "k2x3-p0x1": (3, 2, (2, 3), (0, 1), (5, 4)),
    "k3-p2-wider-than-input": (2, 2, 3, 2, (1, 2)),
    "k3-p0-whole-input": (2, 2, 3, 0, (3, 3)),
}


@pytest.mark.parametrize("name", STRIDE1_CASES)
def test_conv2d_stride1_input_gradient_equals_torch(parity, name):
    c, o, kernel, padding, (h, w) = STRIDE1_CASES[name]
    ours, theirs = conv2d_pair(c, o, kernel, 1, padding)
    compare_with_autograd(parity, f"conv2d stride1 {name}", ours, theirs, random((3, c, h, w), 9))


@pytest.mark.parametrize("name", STRIDE1_CASES)
def test_stacked_conv2d_stride1_input_gradient_equals_torch_per_model(parity, name):
    """StackedConv2d of 3 Conv2d: each model's output, dL/dx and dL/dW, dL/db equal
    torch.autograd's for that model's layer (its own weights, input and output gradient)."""
    c, o, kernel, padding, (h, w) = STRIDE1_CASES[name]
    pairs = [conv2d_pair(c, o, kernel, 1, padding) for _ in range(3)]
    stacked = fw.stack([ours for ours, _ in pairs])
    x = random((3, 2, c, h, w), 11)
    y = stacked(x)
    grad_output = random(y.shape, 12)
    grad_input = stacked.backward(grad_output)
    for m, (_, theirs) in enumerate(pairs):
        x_ref = x[m].clone().requires_grad_()
        y_ref = theirs(x_ref)
        y_ref.backward(grad_output[m])
        parity.check(f"stacked conv2d stride1 {name} forward", y[m], y_ref)
        parity.check(f"stacked conv2d stride1 {name} grad_input", grad_input[m], x_ref.grad)
        for key, param in theirs.named_parameters():
            ours = dict(stacked.named_parameters())[key].grad[m]
            parity.check(f"stacked conv2d stride1 {name} grad {key}", ours, param.grad)


@pytest.mark.parametrize("name", ["k2x3-s3x1-p0x1", "k3-s2-p1", "k2-s2"])
def test_conv2d_backward_equals_central_differences(name):
    c, o, kernel, stride, padding, (h, w) = CONV_CASES[name]
    layer = fw.Conv2d(c, o, kernel, stride, padding, dtype=F64)
    generator = torch.Generator().manual_seed(3)
    check_central_differences(
        layer, torch.randn(2, c, h, w, dtype=F64, generator=generator), generator
    )


def test_conv2d_gradients_accumulate_and_float32_matches_torch(parity):
    ours, theirs = conv2d_pair(3, 4, 3, padding=1, dtype=torch.float32)  # torch's default
    x = random((5, 3, 6, 6), 0, torch.float32)
    for _ in range(2):  # torch adds the second backward's gradients to the first's
        ours.backward(torch.ones_like(ours(x)))
        theirs(x).backward(torch.ones(5, 4, 6, 6))
    for name, param in theirs.named_parameters():
        ours_grad = dict(ours.named_parameters())[name].grad
        parity.check(
            f"conv2d float32 accumulated {name}", ours_grad, param.grad, atol=1e-4, rtol=1e-5
        )


def test_conv2d_default_init_equals_torch_under_manual_seed():
    with torch.random.fork_rng():
        torch.manual_seed(2)
        ours = fw.Conv2d(3, 5, (2, 3), stride=2, padding=1)
        torch.manual_seed(2)
        theirs = torch.nn.Conv2d(3, 5, (2, 3), stride=2, padding=1)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight", "bias"]
    for key, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key
    assert repr(ours) == repr(theirs)


# -- MaxPool2d --------------------------------------------------------------------------------
# Few distinct values, so windows often tie (torch routes the gradient to the first maximum),
# with ±0 and infinities among them.
TIED = st.sampled_from([-2.0, -1.0, -0.0, 0.0, 1.0, 2.0, math.inf, -math.inf])


@st.composite
def pool_cases(draw) -> dict:
    """Kernel, stride (or None), padding up to half the kernel (torch's limit), an input whose
    padded size fits the kernel, with many ties and infinities, in any memory layout."""
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = draw(st.none() | st.tuples(st.integers(1, 3), st.integers(1, 3)))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    shape = (
        draw(st.integers(1, 2)),
        draw(st.integers(1, 3)),
        draw(st.integers(max(1, kernel[0] - 2 * padding[0]), 7)),
        draw(st.integers(max(1, kernel[1] - 2 * padding[1]), 7)),
    )
    values = draw(
        st.lists(TIED | st.floats(-3, 3), min_size=math.prod(shape), max_size=math.prod(shape))
    )
    x = torch.tensor(values, dtype=F64).reshape(shape)
    return {
        "kernel": kernel,
        "stride": stride,
        "padding": padding[0] if padding[0] == padding[1] and draw(st.booleans()) else padding,
        "x": in_layout(x, draw(LAYOUTS)),
        "seed": draw(st.integers(0, 2**31)),
    }


@settings(max_examples=60)
@given(case=pool_cases(), training=st.booleans())
def test_maxpool2d_forward_and_gradient_equal_torch_in_train_and_eval_mode(parity, case, training):
    """In eval mode forward takes only the maxima and backward finds the winners from the
    input: the same values and routing (torch's pooling has no mode)."""
    ours, theirs = maxpool2d_pair(case["kernel"], case["stride"], case["padding"])
    ours.train(training)
    compare_with_autograd(parity, "maxpool2d", ours, theirs, case["x"], seed=case["seed"])


@pytest.mark.parametrize("stacked", [False, True], ids=["one", "stack_of_2"])
def test_maxpool2d_eval_backward_refuses_an_input_modified_after_forward(stacked):
    pool = fw.StackedMaxPool2d(2, 2) if stacked else fw.MaxPool2d(2)
    x = random((2, 1, 3, 4, 4) if stacked else (1, 3, 4, 4), 9)
    y = pool.eval()(x)
    x.mul_(-1)  # the winners would now be others
    with pytest.raises(RuntimeError, match="modified in place between forward and backward"):
        pool.backward(torch.ones_like(y))


# Named cases (kernel, stride, padding, (H, W)): torch's common MaxPool2d(3, 2, 1), overlapping
# padded windows, padding on one side only, the largest padding torch allows, a kernel wider
# than the input that only padding makes fit.
POOL_PADDING_CASES = {
    "k3-s2-p1": (3, 2, 1, (7, 6)),
    "k2-s1-p1": (2, 1, 1, (4, 5)),
    "k3x2-s1x2-p1x0": ((3, 2), (1, 2), (1, 0), (5, 6)),
    "k4-s3-p2": (4, 3, 2, (6, 7)),
    "k5-s1-p2-small": (5, 1, 2, (1, 3)),
}


@pytest.mark.parametrize("name", POOL_PADDING_CASES)
def test_maxpool2d_padding_named_cases_equal_torch(parity, name):
    """Positional arguments as torch's (kernel_size, stride, padding); values with ties, and
    whole windows of −∞ at the border (torch routes their gradient to the window's first input
    position, never to the padding)."""
    kernel, stride, padding, (h, w) = POOL_PADDING_CASES[name]
    x = random((2, 3, h, w), 7).round()  # few distinct values: ties
    x[0, :, : h // 2 + 1, : w // 2 + 1] = -math.inf  # padded corner windows hold only −∞
    ours, theirs = maxpool2d_pair(kernel, stride, padding)
    compare_with_autograd(parity, f"maxpool2d {name}", ours, theirs, x)
    assert ours.padding == ((padding, padding) if isinstance(padding, int) else padding)


# Disjoint windows (stride >= kernel) write each cell's gradient straight into dL/dx, zeroing
# first only where some position is in no window: (kernel, stride, padding, (H, W)).
POOL_DISJOINT_CASES = {
    "k2-tiles-6x6": (2, None, 0, (6, 6)),
    "k2-rows-and-columns-left-5x7": (2, None, 0, (5, 7)),
    "k2-s3-gaps": (2, 3, 0, (7, 8)),
    "k3-p1-tiles-7x7": (3, None, 1, (7, 7)),
    "k2x3-s2x3-p1x0-tiles": ((2, 3), (2, 3), (1, 0), (6, 6)),
}


@pytest.mark.parametrize("name", POOL_DISJOINT_CASES)
def test_maxpool2d_disjoint_windows_gradient_equals_torch(parity, name):
    kernel, stride, padding, (h, w) = POOL_DISJOINT_CASES[name]
    ours, theirs = maxpool2d_pair(kernel, stride, padding)
    x = random((2, 3, h, w), 8).round()  # few distinct values: ties
    for _ in range(2):  # a second backward into memory the first one freed
        compare_with_autograd(parity, f"maxpool2d {name}", ours, theirs, x)


@pytest.mark.parametrize(
    "window",
    [[-math.inf] * 4, [-math.inf, 1.0, 1.0, 2.0], [math.nan, -math.inf, 2.0, 0.0]],
    ids=["all -inf", "-inf and ties", "nan and -inf"],
)
def test_maxpool2d_padding_never_wins_a_window(window):
    """k2-s2-p1 on a 2×2 input: each window holds one input value and three −∞ padding cells,
    so each input value wins its own window, −∞ and NaN included (as in torch)."""
    x = torch.tensor(window, dtype=F64).reshape(1, 1, 2, 2)
    ours, theirs = maxpool2d_pair(2, 2, 1)
    torch.testing.assert_close(ours(x), theirs(x), equal_nan=True, atol=0, rtol=0)
    assert torch.equal(pool_gradient(theirs, x), torch.ones_like(x))  # torch does this
    assert torch.equal(pool_gradient(ours, x), torch.ones_like(x))
    assert torch.equal(pool_gradient(ours.eval(), x), torch.ones_like(x))  # found in backward


def test_maxpool2d_padding_backward_equals_central_differences():
    generator = torch.Generator().manual_seed(5)
    x = torch.randperm(2 * 2 * 5 * 6, generator=generator).to(F64).reshape(2, 2, 5, 6) / 100
    check_central_differences(fw.MaxPool2d((3, 2), stride=(2, 1), padding=1), x, generator)


REFUSED_POOLS = {
    "padding=2 > kernel_size 3 / 2": (
        lambda: fw.MaxPool2d(3, padding=2),
        r"MaxPool2d: padding should be at most half of kernel_size, but got padding=2 and "
        r"kernel_size=3",
    ),
    "padding=(0, 2) > kernel_size (3, 3) / 2": (
        lambda: fw.MaxPool2d((3, 3), 1, (0, 2)),
        r"padding should be at most half of kernel_size, but got padding=\(0, 2\)",
    ),
    "padding=-1": (lambda: fw.MaxPool2d(2, padding=-1), r"padding must be a non-negative int"),
    "dilation=2": (
        lambda: fw.MaxPool2d(2, dilation=2),
        r"MaxPool2d: dilation=2 is not supported; only 1",
    ),
    "dilation=(1, 2)": (lambda: fw.MaxPool2d(2, 2, 0, (1, 2)), r"dilation=\(1, 2\) is not"),
    "return_indices=True": (
        lambda: fw.MaxPool2d(2, return_indices=True),
        r"MaxPool2d: return_indices=True is not supported; only False",
    ),
    "ceil_mode=True": (
        lambda: fw.MaxPool2d(2, 2, 0, 1, False, True),
        r"MaxPool2d: ceil_mode=True is not supported; only False",
    ),
}


@pytest.mark.parametrize("case", REFUSED_POOLS)
def test_maxpool2d_refuses_what_it_does_not_implement_naming_it(case):
    build, message = REFUSED_POOLS[case]
    with pytest.raises(ValueError, match=message):
        build()


def test_maxpool2d_takes_torchs_arguments_at_their_defaults_and_shows_padding():
    ours = fw.MaxPool2d(3, 2, 1, dilation=1, return_indices=False, ceil_mode=False)
    assert (ours.kernel_size, ours.stride, ours.padding) == ((3, 3), (2, 2), (1, 1))
    assert repr(ours) == "MaxPool2d(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1))"
    with pytest.raises(RuntimeError, match="pad should be at most half"):  # torch's own rule
        torch.nn.MaxPool2d(3, padding=2)(torch.zeros(1, 1, 5, 5))


def pool_gradient(layer: fw.Module | torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """dL/dx for L = Σ y (each window's gradient is 1), ours or torch's."""
    if isinstance(layer, fw.Module):
        return layer.backward(torch.ones_like(layer(x)))
    x = x.clone().requires_grad_()
    layer(x).sum().backward()
    return x.grad


@pytest.mark.parametrize(
    ("window", "winner"),
    [
        ([1.0, 1.0, 1.0, 1.0], 0),  # all tied: the first
        ([0.0, 3.0, 3.0, 1.0], 1),  # tied maximum: the first of them
        ([-0.0, 0.0, 0.0, -1.0], 0),  # −0 = 0: still a tie
        ([-math.inf] * 4, 0),
        ([1.0, math.inf, math.inf, 2.0], 1),
        ([math.nan, 1.0, 2.0, 0.0], 0),
        ([1.0, math.nan, 5.0, math.nan], 3),  # torch's kernel: the last NaN
        ([math.nan, math.nan, math.nan, 7.0], 2),
    ],
)
def test_maxpool2d_routes_ties_infinities_and_nans_like_torch(window, winner):
    x = torch.tensor(window, dtype=F64).reshape(1, 1, 2, 2)
    ours, theirs = maxpool2d_pair(2)
    torch.testing.assert_close(ours(x), theirs(x), equal_nan=True, atol=0, rtol=0)
    expected = torch.zeros(4, dtype=F64)
    expected[winner] = 1
    assert torch.equal(pool_gradient(theirs, x).flatten(), expected)  # torch does this
    assert torch.equal(pool_gradient(ours, x).flatten(), expected)


def test_maxpool2d_overlapping_windows_add_gradients_at_a_shared_maximum(parity):
    x = torch.tensor([[0.0, 1.0, 0.0], [0.0, 9.0, 0.0], [0.0, 0.0, 0.0]], dtype=F64)[None, None]
    ours, theirs = maxpool2d_pair(2, stride=1)
    grad = pool_gradient(ours, x)
    assert grad[0, 0, 1, 1] == 4  # the 9 wins all four windows
    parity.check("maxpool2d overlapping", grad, pool_gradient(theirs, x))


def test_maxpool2d_backward_equals_central_differences():
    generator = torch.Generator().manual_seed(4)
    # Distinct values, at least 0.01 apart: x ± h never changes a window's winner.
    x = torch.randperm(2 * 3 * 5 * 6, generator=generator).to(F64).reshape(2, 3, 5, 6) / 100
    check_central_differences(fw.MaxPool2d((2, 3), stride=(1, 2)), x, generator)


# -- Flatten ----------------------------------------------------------------------------------
@st.composite
def flatten_cases(draw) -> tuple[tuple[int, ...], int, int]:
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=5)))
    start = draw(st.integers(-len(shape), len(shape) - 1))
    end = draw(st.integers(start % len(shape), len(shape) - 1))
    return shape, start, end - len(shape) if draw(st.booleans()) else end


@SETTINGS
@given(case=flatten_cases(), seed=st.integers(0, 2**31))
def test_flatten_forward_and_gradient_equal_torch(parity, case, seed):
    shape, start, end = case
    ours, theirs = flatten_pair(start, end)
    y, _ = compare_with_autograd(parity, "flatten", ours, theirs, random(shape, seed), seed=seed)
    assert y.shape == theirs(random(shape, seed)).shape


def test_flatten_defaults_keep_the_batch_dimension():
    layer, theirs = flatten_pair()
    x = random((4, 2, 3, 5), 0)
    assert layer(x).shape == (4, 30)
    assert torch.equal(layer.backward(layer(x)), x)
    assert repr(layer) == repr(theirs)


# -- Dropout ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=str)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_masks_and_gradients_equal_torch_from_the_same_seed(parity, p, dtype):
    """Ours with a generator seeded s, torch.nn.Dropout after torch.manual_seed(s): the same
    masks, call after call, and the same gradients (torch.autograd through torch's)."""
    ours, theirs = dropout_pair(p, generator=torch.Generator().manual_seed(8))
    with torch.random.fork_rng():
        torch.manual_seed(8)
        for call in range(3):
            x = random((16, 9), call, dtype)
            grad_output = random((16, 9), 10 + call, dtype)
            y = ours(x)
            grad_input = ours.backward(grad_output)
            x_ref = x.clone().requires_grad_()
            y_ref = theirs(x_ref)
            y_ref.backward(grad_output)
            assert torch.equal(y, y_ref), f"call {call}: masks differ"
            assert torch.equal(grad_input, x_ref.grad), f"call {call}"
            parity.record(f"dropout p={p} {dtype}", 0.0)
    kept = (y != 0).double().mean().item()  # the last call: about 1 − p of 144 values kept
    assert abs(kept - (1 - p)) < 0.2


def test_dropout_without_generator_draws_from_torchs_global_generator():
    x = random((32, 5), 0)
    with torch.random.fork_rng():
        layer, twin_layer = dropout_pair(0.3)
        torch.manual_seed(3)
        ours = layer(x)
        torch.manual_seed(3)
        theirs = twin_layer(x)
    assert torch.equal(ours, theirs)


def test_dropout_eval_mode_and_p0_are_the_identity_and_draw_nothing():
    x, grad = random((6, 4), 0), random((6, 4), 1)
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    for layer in (
        fw.Dropout(0.5, generator=generator).eval(),
        fw.Dropout(0.0, generator=generator),
    ):
        assert torch.equal(layer(x), x)
        assert torch.equal(layer.backward(grad), grad)
    assert torch.equal(generator.get_state(), state)


def test_dropout_p1_zeroes_everything_like_torch():
    x = torch.tensor([[1.0, -2.0], [math.nan, 0.5]], dtype=F64)
    ours, theirs = dropout_pair(1.0)
    torch.testing.assert_close(ours(x), theirs(x), equal_nan=True, atol=0, rtol=0)  # NaN · 0
    assert torch.equal(ours.backward(torch.ones_like(x)), torch.zeros_like(x))


def test_dropout_inplace_changes_the_input_like_torch():
    x = random((8, 8), 0)
    ours, theirs = x.clone(), x.clone()
    generator = torch.Generator().manual_seed(1)
    layer, twin_layer = dropout_pair(0.4, inplace=True, generator=generator)
    y = layer(ours)
    with torch.random.fork_rng():
        torch.manual_seed(1)
        twin_layer(theirs)
    assert y is ours and torch.equal(ours, theirs)


def test_same_mask_dropout_twin_replays_our_masks_whichever_runs_first():
    """bench.harness.reference's twin of a Dropout with a generator: its masks are ours, even when
    all of our calls come first, and it leaves torch's global generator alone."""
    ours = fw.Dropout(0.5, generator=torch.Generator().manual_seed(4))
    theirs = torch_module(ours)
    assert isinstance(theirs, SameMaskDropout)
    inputs = [random((10, 10), seed) for seed in range(3)]
    ours_outputs = [ours(x) for x in inputs]
    before = torch.get_rng_state()
    for x, expected in zip(inputs, ours_outputs, strict=True):
        assert torch.equal(theirs(x), expected)
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(theirs.eval()(inputs[0]), inputs[0])


# -- every layout gives the same values -------------------------------------------------------
@pytest.mark.parametrize(
    "layer",
    [
        fw.Conv2d(2, 3, 3, padding=1, dtype=F64),
        fw.MaxPool2d(2),
        fw.MaxPool2d(3, 2, 1),
        fw.Flatten(),
        fw.Dropout(0.5, generator=torch.Generator()),
    ],
    ids=lambda layer: repr(layer),
)
def test_layers_give_identical_results_for_every_memory_layout(layer):
    """Our Conv2d returns (and the next layers receive) batch-innermost strides; a user passes
    contiguous or channels-last tensors: the values (and dropout's masks) must not depend on
    it, bit for bit."""
    x = random((3, 2, 4, 6), 0)
    results = []
    for order in itertools.permutations(range(4)):
        if isinstance(layer, fw.Dropout):
            layer.generator.manual_seed(0)
        y = layer(in_layout(x, order))
        grad_output = random(y.shape, 1)
        results.append(
            (y, layer.backward(in_layout(grad_output, order) if y.dim() == 4 else grad_output))
        )
    for y, grad in results[1:]:
        assert torch.equal(y, results[0][0])
        assert torch.equal(grad, results[0][1])


def test_conv2d_first_layer_without_input_grad_accumulates_the_same_gradients():
    """Sequential.backward(input_grad=False) takes a first Conv2d's parameter gradients alone
    (Conv2d._accumulate, no dL/dx): the same as with dL/dx, and the cache is freed."""
    generator = torch.Generator().manual_seed(3)
    model = fw.Sequential(fw.Conv2d(2, 3, 3, padding=1), fw.ReLU(), fw.Flatten(), fw.Linear(48, 2))
    model.double()
    x = torch.randn(5, 2, 4, 4, dtype=F64, generator=generator)
    grad = torch.randn(5, 2, dtype=F64, generator=generator)
    model(x)
    assert model.backward(grad) is not None
    with_input = {name: param.grad.clone() for name, param in model.named_parameters()}
    model.zero_grad()
    model(x)
    assert model.backward(grad, input_grad=False) is None
    for name, param in model.named_parameters():
        assert torch.equal(param.grad, with_input[name]), name
    with pytest.raises(RuntimeError, match="backward called twice"):
        model[0].backward(torch.zeros(5, 3, 4, 4, dtype=F64))
