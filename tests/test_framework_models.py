"""Whole models: a Sequential of each activation with each loss against its torch.nn twin
(bench.harness.reference) and against central differences; state_dict compatibility; gradient
accumulation and zeroing; a training step with grad mode off; the README example. PARITY lists
the Sequential pairs for the coverage check of tests/test_framework_contract.py."""

from __future__ import annotations

import contextlib
import io
import itertools
import re
from functools import partial
from pathlib import Path

import pytest
import torch
from gradcheck import central_difference

import framework as fw
from bench.harness.reference import torch_loss, torch_twin

F64 = torch.float64
ROOT = Path(__file__).resolve().parents[1]

ACTIVATIONS = {"relu": fw.ReLU, "tanh": fw.Tanh, "leaky_relu": fw.LeakyReLU, "elu": fw.ELU}
LOSSES = {"mse": fw.MSELoss, "bce": fw.BCELoss}


def mlp(
    activation: str, widths=(2, 8, 8, 1), init: str = "default", seed: int = 0
) -> fw.Sequential:
    """Linear → activation → … → Linear → Sigmoid, in float64, initialised from ``seed``."""
    layers: list[fw.Module] = []
    for d_in, d_out in itertools.pairwise(widths):
        layers += [fw.Linear(d_in, d_out, dtype=F64), ACTIVATIONS[activation]()]
    layers[-1] = fw.Sigmoid()
    return fw.Sequential(*layers, init=init, generator=torch.Generator().manual_seed(seed))


def sequential_pair(
    activation: str, init: str = "default"
) -> tuple[fw.Sequential, torch.nn.Module]:
    """``mlp(activation, init=init)`` and its torch.nn twin (same state)."""
    model = mlp(activation, init=init)
    return model, torch_twin(model)


# For test_framework_contract's coverage check: name -> factory of (ours, torch's).
PARITY = {f"sequential {name}": partial(sequential_pair, name) for name in ACTIVATIONS}


def data(n: int = 16, d_in: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random inputs with one all-zero row (with zero biases it hits every kink exactly) and
    0/1 targets."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d_in, dtype=F64, generator=generator)  # (N, in)
    x[0] = 0
    y = torch.randint(0, 2, (n, 1), generator=generator).to(F64)  # (N, 1)
    return x, y


def grads(model: fw.Module) -> dict[str, torch.Tensor]:
    return {name: param.grad.clone() for name, param in model.named_parameters()}


# -- against torch.autograd -----------------------------------------------------------------------
@pytest.mark.parametrize("init", ["default", "kaiming_uniform"])
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_sequential_gradients_equal_torch_twin(parity, activation, loss, init):
    (model, twin), criterion = sequential_pair(activation, init), LOSSES[loss]()
    twin_criterion = torch_loss(criterion)
    x, y = data()
    case = f"sequential {activation}/{loss}/{init}"

    output = model(x)
    value = criterion(output, y)
    grad_input = model.backward(criterion.backward())

    x_ref = x.clone().requires_grad_()
    output_ref = twin(x_ref)
    value_ref = twin_criterion(output_ref, y)
    value_ref.backward()

    parity.check(f"{case} output", output, output_ref)
    parity.check(f"{case} loss", value, value_ref)
    parity.check(f"{case} grad_input", grad_input, x_ref.grad)
    twin_params = dict(twin.named_parameters())
    assert list(dict(model.named_parameters())) == list(twin_params)
    for name, param in model.named_parameters():
        parity.check(f"{case} grad {name}", param.grad, twin_params[name].grad)


# -- against central differences ------------------------------------------------------------------
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_sequential_gradients_equal_central_differences(activation, loss):
    model, criterion = mlp(activation, widths=(3, 4, 4, 1)), LOSSES[loss]()
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(5, 3, dtype=F64, generator=generator)
    y = torch.randint(0, 2, (5, 1), generator=generator).to(F64)
    criterion(model(x), y)
    grad_input = model.backward(criterion.backward())

    def objective() -> float:
        return criterion(model(x), y).item()

    tolerance = {"atol": 1e-7, "rtol": 1e-6}
    torch.testing.assert_close(grad_input, central_difference(objective, x), **tolerance)
    for name, param in model.named_parameters():
        numeric = central_difference(objective, param.data)
        torch.testing.assert_close(param.grad, numeric, **tolerance, msg=name)


# -- state_dict -----------------------------------------------------------------------------------
def both_models() -> tuple[fw.Sequential, torch.nn.Sequential]:
    ours = fw.Sequential(
        fw.Linear(2, 25), fw.ReLU(), fw.Linear(25, 7, bias=False), fw.Tanh(), fw.Linear(7, 1)
    )
    theirs = torch.nn.Sequential(
        torch.nn.Linear(2, 25),
        torch.nn.ReLU(),
        torch.nn.Linear(25, 7, bias=False),
        torch.nn.Tanh(),
        torch.nn.Linear(7, 1),
    )
    return ours, theirs


def test_state_dict_keys_and_shapes_equal_torch_sequential():
    ours, theirs = both_models()
    ours_items = [(key, tuple(value.shape)) for key, value in ours.state_dict().items()]
    torch_items = [(key, tuple(value.shape)) for key, value in theirs.state_dict().items()]
    assert ours_items == torch_items
    assert [name for name, _ in ours.named_parameters()] == [
        n for n, _ in theirs.named_parameters()
    ]


def test_state_dict_loads_from_torch_and_into_torch():
    ours, theirs = both_models()
    x = torch.randn(4, 2)

    ours.load_state_dict(theirs.state_dict())  # torch → ours
    for key, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value)
    assert torch.equal(ours(x), theirs(x).detach())

    source = {key: torch.randn_like(value) for key, value in ours.state_dict().items()}
    ours.load_state_dict(source)
    theirs.load_state_dict(ours.state_dict())  # ours → torch
    for key, value in ours.state_dict().items():
        assert torch.equal(theirs.state_dict()[key], value)
    assert torch.equal(ours(x), theirs(x).detach())


def test_load_state_dict_copies_into_the_tensors_the_optimizer_updates():
    ours, theirs = both_models()
    optimizer = fw.optim.SGD(ours.parameters(), lr=0.1)
    state = {key: value.detach().clone() for key, value in theirs.state_dict().items()}
    ours.load_state_dict(state)
    state["0.weight"].add_(1)  # a copy, not an alias
    assert torch.equal(ours.state_dict()["0.weight"], theirs.state_dict()["0.weight"])

    ours.zero_grad()
    ours[0].weight.grad.fill_(1)
    optimizer.step()  # the loaded values are the ones the optimizer updates
    expected = theirs.state_dict()["0.weight"] - 0.1
    torch.testing.assert_close(ours.state_dict()["0.weight"], expected, atol=0, rtol=0)


# -- buffers --------------------------------------------------------------------------------------
class OursWithBuffers(fw.Module):
    """A child assigned first, then a parameter and buffers: torch's state_dict still lists the
    module's own parameters, then its own buffers, then the child's."""

    def __init__(self) -> None:
        super().__init__()
        self.child = fw.Linear(2, 3)
        self.scale = fw.Parameter(torch.ones(3))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        self.shift = fw.Buffer(torch.zeros(3))
        self.register_buffer("nothing", None)  # declared, holds no state


class TheirsWithBuffers(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.child = torch.nn.Linear(2, 3)
        self.scale = torch.nn.Parameter(torch.ones(3))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        self.register_buffer("shift", torch.zeros(3))
        self.register_buffer("nothing", None)


def state_signature(module) -> list[tuple[str, tuple[int, ...], torch.dtype]]:
    return [(key, tuple(value.shape), value.dtype) for key, value in module.state_dict().items()]


def test_buffers_are_in_state_dict_in_torchs_order_and_dtypes():
    ours, theirs = OursWithBuffers(), TheirsWithBuffers()
    assert [key for key, _, _ in state_signature(ours)] == [
        "scale",
        "count",
        "shift",
        "child.weight",
        "child.bias",
    ]
    assert state_signature(ours) == state_signature(theirs)
    assert [name for name, _ in ours.named_buffers()] == ["count", "shift"]
    assert [name for name, _ in ours.named_parameters()] == ["scale", "child.weight", "child.bias"]
    # to(dtype) casts floating-point tensors only, as torch does: count stays int64.
    ours.double()
    theirs.double()
    assert state_signature(ours) == state_signature(theirs)
    assert ours.count.dtype == torch.int64 and ours.shift.dtype == F64


def test_buffers_load_both_ways_and_move_with_to():
    ours, theirs = OursWithBuffers(), TheirsWithBuffers()
    with torch.no_grad():
        theirs.count.fill_(7)
        theirs.shift.normal_()
    ours.load_state_dict(theirs.state_dict())  # strict
    assert ours.count.data.item() == 7 and torch.equal(ours.shift.data, theirs.shift)
    ours.shift.data.add_(1)
    theirs.load_state_dict(ours.state_dict())  # strict
    assert torch.equal(theirs.shift, ours.shift.data)
    with pytest.raises(RuntimeError, match=r"missing keys \['count'\]"):
        ours.load_state_dict({k: v for k, v in theirs.state_dict().items() if k != "count"})
    ours.to("meta")
    assert all(buffer.device.type == "meta" for buffer in ours.buffers())


# -- accumulation and zeroing ---------------------------------------------------------------------
@pytest.mark.parametrize("optimizer_first", [False, True], ids=["plain", "after_optimizer"])
def test_gradients_accumulate_over_two_backwards_like_torch(parity, optimizer_first):
    model, criterion = mlp("tanh"), fw.MSELoss()
    if optimizer_first:  # parameters now live in the optimizer's flat buffer
        fw.optim.SGD(model.parameters(), lr=0.1)
    twin, x, y = torch_twin(model), *data()

    def backward_once() -> torch.Tensor:
        criterion(model(x), y)
        return model.backward(criterion.backward())

    model.zero_grad()
    backward_once()
    once = grads(model)
    backward_once()
    twice = grads(model)
    for name in once:
        torch.testing.assert_close(twice[name], 2 * once[name], atol=1e-15, rtol=1e-14)

    for _ in range(2):
        torch.nn.MSELoss()(twin(x), y).backward()
    for name, param in twin.named_parameters():
        parity.check(f"accumulate/{optimizer_first=} {name}", twice[name], param.grad)


def test_model_zero_grad_and_optimizer_zero_grad_clear_every_gradient():
    model, criterion = mlp("relu"), fw.BCELoss()
    optimizer = fw.optim.Adam(model.parameters())
    x, y = data()
    for zero_grad in (model.zero_grad, optimizer.zero_grad):
        criterion(model(x), y)
        model.backward(criterion.backward())
        assert any(param.grad.abs().sum() > 0 for param in model.parameters())
        zero_grad()
        for name, param in model.named_parameters():
            assert torch.count_nonzero(param.grad) == 0, f"{zero_grad.__qualname__}: {name}"


def test_gradients_survive_optimizer_creation():
    model, criterion = mlp("elu"), fw.MSELoss()
    x, y = data()
    criterion(model(x), y)
    model.backward(criterion.backward())
    before = grads(model)
    fw.optim.RMSprop(model.parameters())  # copies grads into its flat buffer
    for name, grad in grads(model).items():
        assert torch.equal(grad, before[name]), name


# -- no autograd: a training step with grad mode off ----------------------------------------------
def training_step() -> list[torch.Tensor]:
    """One forward, loss, backward and Adam step; every tensor it made or changed."""
    model, criterion = mlp("leaky_relu", seed=5), fw.BCELoss()
    optimizer = fw.optim.Adam(model.parameters(), lr=0.01)
    x, y = data(seed=5)
    output = model(x)
    loss = criterion(output, y)
    optimizer.zero_grad()
    grad_input = model.backward(criterion.backward())
    optimizer.step()
    params = [t for p in model.parameters() for t in (p.data, p.grad)]
    return [output, loss, grad_input, *params]


def test_training_step_with_grad_mode_off_equals_grad_mode_on():
    with_grad = training_step()
    previous = torch.is_grad_enabled()
    torch.set_grad_enabled(False)
    try:
        without_grad = training_step()
    finally:
        torch.set_grad_enabled(previous)
    for ours_on, ours_off in zip(with_grad, without_grad, strict=True):
        assert not ours_on.requires_grad and not ours_off.requires_grad
        assert ours_on.grad_fn is None and ours_off.grad_fn is None
        assert torch.equal(ours_on, ours_off)


# -- the README example ---------------------------------------------------------------------------
def test_readme_example_trains_to_low_error():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    assert len(blocks) == 1, "README.md should have exactly one ```python block"
    namespace: dict = {}
    printed = io.StringIO()
    with torch.random.fork_rng(), contextlib.redirect_stdout(printed):
        exec(compile(blocks[0], "README.md", "exec"), namespace)
    error = float(namespace["error"])
    assert error < 0.1, (
        f"README example reached train error {error}; printed {printed.getvalue()!r}"
    )
    assert f"train error {error:.3f}" in printed.getvalue()


# -- in-place work inside Sequential --------------------------------------------------------------
IN_PLACE_CHAINS = {
    "linear-activations": lambda: [
        fw.Linear(3, 4),
        fw.ReLU(),
        fw.Linear(4, 4),
        fw.Tanh(),
        fw.Linear(4, 2),
        fw.Sigmoid(),
    ],
    "activation-first": lambda: [fw.Tanh(), fw.ReLU(), fw.Linear(3, 2), fw.ReLU()],
    "pass-through-last": lambda: [fw.Linear(3, 4), fw.ReLU(), fw.Dropout(0.0), fw.Flatten()],
    "activation-last-after-activation": lambda: [fw.Linear(3, 4), fw.Tanh(), fw.ReLU()],
    "leaky-elu": lambda: [fw.Linear(3, 4), fw.LeakyReLU(0.2), fw.ELU(), fw.Linear(4, 2), fw.ELU()],
}


@pytest.mark.parametrize("chain", IN_PLACE_CHAINS)
def test_sequential_in_place_work_leaves_what_the_caller_holds_and_equals_layer_by_layer(
    parity, chain
):
    """Sequential overwrites only its own intermediate tensors: the input, the output and the
    gradient seed the caller holds keep their values, and output and gradients equal those of
    the same layers called one by one, out of place."""
    generator = torch.Generator().manual_seed(0)
    model = fw.Sequential(*IN_PLACE_CHAINS[chain](), generator=generator).double()
    layers = [layer for layer in model]
    x = torch.randn(6, 3, dtype=F64, generator=generator)
    seed = torch.randn(model(x).shape, dtype=F64, generator=generator)
    x_before, seed_before = x.clone(), seed.clone()

    y = x
    for layer in layers:  # out of place, one by one
        y = layer(y)
    expected_output = y.clone()
    g = seed.clone()
    for layer in reversed(layers):
        g = layer.backward(g)
    expected = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()

    output = model(x)
    held = output.clone()
    grad_input = model.backward(seed)
    assert torch.equal(x, x_before) and torch.equal(seed, seed_before)
    assert torch.equal(output, held)
    parity.check(f"in-place {chain} output", output, expected_output, atol=1e-15, rtol=1e-15)
    parity.check(f"in-place {chain} grad_input", grad_input, g, atol=1e-15, rtol=1e-14)
    for name, param in model.named_parameters():
        parity.check(f"in-place {chain} {name}", param.grad, expected[name], atol=1e-15, rtol=1e-14)


def test_backward_without_input_grad_accumulates_the_same_parameter_gradients():
    model, criterion = mlp("relu"), fw.MSELoss()
    x, y = data()
    criterion(model(x), y)
    assert model.backward(criterion.backward()) is not None
    with_input = grads(model)
    model.zero_grad()
    criterion(model(x), y)
    assert model.backward(criterion.backward(), input_grad=False) is None
    for name, grad in grads(model).items():
        assert torch.equal(grad, with_input[name]), name
