"""BatchNorm1d and BatchNorm2d against torch.nn: forward, input and parameter gradients against
torch.autograd in float64 in training mode (batch statistics) and eval mode (running statistics),
over random shapes, options and memory layouts (hypothesis); the running statistics and
num_batches_tracked after several steps; central differences; buffers in the state_dict.
PARITY lists the pairs (one per kind of KINDS) for the coverage check of
tests/test_framework_contract.py."""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from module_check import check_central_differences, compare_with_autograd, in_layout

import framework as fw
from bench.harness.reference import torch_module
from framework import batchnorm

F64 = torch.float64
SETTINGS = settings(max_examples=30)  # the rest: conftest's profile
KINDS = {  # name: (class, trailing dimensions after (N, C))
    "1d-NC": (fw.BatchNorm1d, 0),
    "1d-NCL": (fw.BatchNorm1d, 1),
    "2d": (fw.BatchNorm2d, 2),
}


def randomize(layer: fw.Module, generator: torch.Generator) -> None:
    """Random affine parameters and running statistics (not torch's ones/zeros), so a mix-up
    of γ and β or of mean and variance shows."""
    for name, tensor in layer.state_dict().items():
        if name == "num_batches_tracked":
            tensor.fill_(3)
        elif name == "running_var":
            tensor.uniform_(0.5, 2, generator=generator)
        else:
            tensor.normal_(generator=generator)


def batchnorm_pair(kind: str, channels: int, seed: int, **options):
    """Our layer (random state) and its torch.nn twin (bench.harness.reference), same state."""
    ours = KINDS[kind][0](channels, dtype=F64, **options)
    randomize(ours, torch.Generator().manual_seed(seed))
    theirs = torch_module(ours)
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


# For test_framework_contract's coverage check: name -> factory of (ours, torch's).
PARITY = {f"batchnorm{kind}": partial(batchnorm_pair, kind, 3, 0) for kind in KINDS}


def check_state(parity, case: str, ours: fw.Module, theirs: torch.nn.Module) -> None:
    theirs_state = theirs.state_dict()
    assert list(ours.state_dict()) == list(theirs_state)
    for key, value in ours.state_dict().items():
        assert value.dtype == theirs_state[key].dtype, key
        parity.check(f"{case} {key}", value, theirs_state[key])


@st.composite
def batchnorm_cases(draw) -> dict:
    kind = draw(st.sampled_from(sorted(KINDS)))
    trailing = tuple(draw(st.integers(1, 4)) for _ in range(KINDS[kind][1]))
    batch = draw(st.integers(1 if math.prod(trailing) > 1 else 2, 4))  # > 1 value per channel
    affine = draw(st.booleans())
    return {
        "kind": kind,
        "channels": draw(st.integers(1, 4)),
        "shape": (batch, *trailing),
        "options": {
            "eps": draw(st.sampled_from([1e-5, 1e-3, 0.5])),
            "momentum": draw(st.sampled_from([0.1, 0.0, 1.0, 0.37, None])),
            "affine": affine,
            "track_running_stats": draw(st.booleans()),
            "bias": draw(st.booleans()) if affine else True,
        },
        "scale": draw(st.sampled_from([1.0, 1e-3, 1e3])),
        "layout": tuple(draw(st.permutations(range(2 + len(trailing))))),
        "seed": draw(st.integers(0, 2**31)),
    }


@SETTINGS
@given(case=batchnorm_cases())
def test_batchnorm_train_then_eval_equals_torch(parity, case):
    """Two training steps then one eval step on fresh batches: outputs, every gradient
    (accumulated over the steps, as torch accumulates) and the buffers after each step."""
    ours, theirs = batchnorm_pair(case["kind"], case["channels"], case["seed"], **case["options"])
    batch, *trailing = case["shape"]
    generator = torch.Generator().manual_seed(case["seed"])
    for step, mode in enumerate(["train", "train", "eval"]):
        ours.train(mode == "train")
        theirs.train(mode == "train")
        x = torch.randn(batch, case["channels"], *trailing, dtype=F64, generator=generator)
        x = in_layout(x * case["scale"] + step, case["layout"])
        name = f"batchnorm{case['kind']} {mode}"
        compare_with_autograd(parity, name, ours, theirs, x, seed=case["seed"] + step)
        check_state(parity, name, ours, theirs)


# The per-channel sums of products as one batched dot product (batchnorm._sum_of_products)
# when each channel's values are one run of memory (a convolution's output, batch innermost:
# layout (C, H, W, N)); the other layouts through (a·b).sum. Memory orders, outermost first.
CHANNEL_RUNS = (1, 2, 3, 0)
LAYOUT_CASES = {
    "x-chwn-grad-chwn": (CHANNEL_RUNS, CHANNEL_RUNS),
    "x-chwn-grad-nchw": (CHANNEL_RUNS, (0, 1, 2, 3)),
    "x-nchw-grad-chwn": ((0, 1, 2, 3), CHANNEL_RUNS),
    "x-cnhw-grad-cnhw": ((1, 0, 2, 3), (1, 0, 2, 3)),
}


@pytest.mark.parametrize("dot_min", [0, None], ids=["dot-at-any-size", "dot-threshold"])
@pytest.mark.parametrize("name", LAYOUT_CASES)
def test_batchnorm2d_channel_run_layouts_equal_torch(parity, monkeypatch, name, dot_min):
    if dot_min is not None:  # the batched dot product also for these small maps
        monkeypatch.setattr(batchnorm, "_DOT_MIN", dot_min)
    layout, grad_layout = LAYOUT_CASES[name]
    ours, theirs = batchnorm_pair("2d", 3, 4)
    generator = torch.Generator().manual_seed(4)
    x = in_layout(torch.randn(5, 3, 4, 2, dtype=F64, generator=generator) * 3 + 1, layout)
    grad = in_layout(torch.randn(5, 3, 4, 2, dtype=F64, generator=generator), grad_layout)
    compare_with_autograd(parity, f"batchnorm2d {name}", ours, theirs, x, grad)
    check_state(parity, f"batchnorm2d {name}", ours, theirs)


def test_stacked_batchnorm2d_channel_runs_equal_each_model_alone(parity, monkeypatch):
    """(M, C, H, W, N) memory, as a stacked convolution's output: each model's slice equals its
    own BatchNorm2d (outputs, dL/dx, dL/dγ, dL/dβ, running statistics), the stack through the
    batched dot product, each model alone through a·b then sum (as below _DOT_MIN)."""
    monkeypatch.setattr(batchnorm, "_DOT_MIN", 2 * 3 * 4 * 2 * 5)  # the stack's size
    alone = [batchnorm_pair("2d", 3, seed)[0] for seed in range(2)]
    stacked = fw.stack(alone)
    generator = torch.Generator().manual_seed(6)
    x = torch.randn(2, 3, 4, 2, 5, dtype=F64, generator=generator).permute(0, 4, 1, 2, 3)
    grad = torch.randn(2, 3, 4, 2, 5, dtype=F64, generator=generator).permute(0, 4, 1, 2, 3)
    y, grad_input = stacked(x), stacked.backward(grad)
    for m, layer in enumerate(alone):
        parity.check("stacked batchnorm2d channel runs forward", y[m], layer(x[m]))
        parity.check(
            "stacked batchnorm2d channel runs grad_input", grad_input[m], layer.backward(grad[m])
        )
        for key, value in layer.state_dict().items():
            parity.check(
                f"stacked batchnorm2d channel runs {key}", stacked.state_dict()[key][m], value
            )
        for key, param in layer.named_parameters():
            stacked_grad = dict(stacked.named_parameters())[key].grad[m]
            parity.check(f"stacked batchnorm2d channel runs grad {key}", stacked_grad, param.grad)


@pytest.mark.parametrize("momentum", [0.1, None], ids=["momentum0.1", "cumulative"])
@pytest.mark.parametrize("kind", KINDS)
def test_running_statistics_over_several_steps_equal_torch(parity, kind, momentum):
    ours = KINDS[kind][0](3, momentum=momentum, dtype=F64)
    theirs = torch_module(ours)
    trailing = (5,) * KINDS[kind][1]
    generator = torch.Generator().manual_seed(1)
    for step in range(6):
        x = torch.randn(8, 3, *trailing, dtype=F64, generator=generator) * (step + 1) - step
        ours(x)
        theirs(x)
        check_state(parity, f"batchnorm{kind} step {step} {momentum=}", ours, theirs)
    assert ours.num_batches_tracked.data.item() == 6
    ours.eval()
    theirs.eval()
    x = torch.randn(4, 3, *trailing, dtype=F64, generator=generator)
    compare_with_autograd(parity, f"batchnorm{kind} eval after steps", ours, theirs, x)


def test_eval_mode_uses_running_statistics_not_the_batch():
    layer = fw.BatchNorm1d(2, dtype=F64).eval()
    layer.running_mean.data.copy_(torch.tensor([1.0, -2.0], dtype=F64))
    layer.running_var.data.copy_(torch.tensor([4.0, 0.25], dtype=F64))
    x = torch.tensor([[3.0, -2.0], [5.0, -1.5]], dtype=F64)
    expected = (x - layer.running_mean.data) / torch.sqrt(layer.running_var.data + layer.eps)
    torch.testing.assert_close(layer(x), expected, atol=1e-15, rtol=1e-15)
    assert layer.num_batches_tracked.data.item() == 0  # eval does not update the buffers


def test_without_running_statistics_both_modes_use_the_batch(parity):
    ours, theirs = batchnorm_pair("2d", 3, 0, track_running_stats=False)
    assert ours.running_mean is None and list(ours.state_dict()) == ["weight", "bias"]
    x = torch.randn(4, 3, 2, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    for mode in (True, False):
        ours.train(mode)
        theirs.train(mode)
        compare_with_autograd(parity, f"batchnorm no stats training={mode}", ours, theirs, x)


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("kind", KINDS)
def test_batchnorm_backward_equals_central_differences(kind, mode):
    layer = KINDS[kind][0](3, dtype=F64)
    generator = torch.Generator().manual_seed(6)
    randomize(layer, generator)
    layer.train(mode == "train")
    x = torch.randn(4, 3, *(3,) * KINDS[kind][1], dtype=F64, generator=generator)
    check_central_differences(layer, x, generator)


def test_to_double_casts_buffers_but_not_the_int64_counter_like_torch():
    ours, theirs = fw.BatchNorm2d(4), torch.nn.BatchNorm2d(4)
    for layer in (ours, theirs):
        layer.double()
    dtypes = {key: value.dtype for key, value in ours.state_dict().items()}
    assert dtypes == {key: value.dtype for key, value in theirs.state_dict().items()}
    assert dtypes["num_batches_tracked"] == torch.int64 and dtypes["running_var"] == F64
    assert repr(ours) == repr(theirs)


@pytest.mark.parametrize("eps", [0.0, 0, -0.0, -1e-5])
@pytest.mark.parametrize("kind", ["1d-NC", "2d"])
def test_eps_not_positive_is_refused_at_construction_naming_it(kind, eps):
    """torch refuses ε = 0 only in a training forward ("eps must be positive"); here the
    constructor does, for both modes (ε = 0 gives 1/√0 = inf on a constant channel)."""
    layer, trailing = KINDS[kind]
    theirs = getattr(torch.nn, layer.__name__)(3, eps=eps, dtype=F64)
    with pytest.raises(ValueError, match="eps must be positive"):
        theirs(torch.ones(4, 3, *(2,) * trailing, dtype=F64))  # what torch does with it
    with pytest.raises(ValueError, match=rf"^{layer.__name__}: eps must be in \(0.0, inf\], got "):
        layer(3, eps=eps)
    assert layer(3, eps=5e-324).eps == 5e-324  # any positive ε is accepted, like torch


def test_channel_rows_view_each_channels_run_or_refuse():
    """batchnorm._rows: a (K, 1, n) view (no copy) of a batch-innermost map, one row per
    (model,) channel; None where a channel's values are not one run."""
    x = torch.arange(2 * 3 * 4 * 5, dtype=F64).reshape(2, 3, 4, 5)  # (M, C, H, N) memory
    stacked = x.permute(0, 3, 1, 2)  # (M, N, C, H): the stacked BatchNorm's view
    rows = batchnorm._rows(stacked, (1, 3))
    assert rows is not None and rows.data_ptr() == x.data_ptr()
    assert torch.equal(rows.flatten(1), x.reshape(6, 20))
    features = torch.arange(15, dtype=F64).reshape(3, 5)
    assert batchnorm._rows(features.t(), (0,)) is not None  # (N, C) of (C, N) memory: BatchNorm1d
    assert batchnorm._rows(features, (0,)) is None  # (N, C) memory: channels are columns, not runs
    assert (
        batchnorm._rows(stacked[:, :4], (1, 3)) is None
    )  # a slice of the batch: gaps between runs
