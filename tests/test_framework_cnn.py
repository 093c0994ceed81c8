"""A small CNN end to end against its torch.nn twin: state_dict keys, order and dtypes, loading
both ways with strict=True; 20 steps of SGD with momentum in float64 through Conv2d-BatchNorm2d-
ReLU-MaxPool2d twice, Flatten, Dropout (the same masks on both sides) and Linear with a
CrossEntropyLoss, equal to the twin bench.harness.reference builds and torch.optim trains;
train()/eval() reach every nested module."""

from __future__ import annotations

import torch

import framework as fw
from bench.harness.reference import SameMaskDropout, torch_loss, torch_twin

F64 = torch.float64


def cnn(dtype: torch.dtype = F64, seed: int = 0) -> fw.Sequential:
    """(N, 1, 8, 8) → 3 class logits; Dropout's masks drawn from a generator seeded ``seed``."""
    factory = {"dtype": dtype}
    return fw.Sequential(
        fw.Conv2d(1, 4, 3, padding=1, **factory),
        fw.BatchNorm2d(4, **factory),
        fw.ReLU(),
        fw.MaxPool2d(2),
        fw.Conv2d(4, 8, 3, padding=1, **factory),
        fw.BatchNorm2d(8, **factory),
        fw.ReLU(),
        fw.MaxPool2d(2),
        fw.Flatten(),
        fw.Dropout(0.25, generator=torch.Generator().manual_seed(seed)),
        fw.Linear(8 * 2 * 2, 3, **factory),
        generator=torch.Generator().manual_seed(seed),
    )


def torch_cnn(dtype: torch.dtype = F64) -> torch.nn.Sequential:
    """The same architecture written directly in torch.nn (not through bench.harness.reference)."""
    factory = {"dtype": dtype}
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1, **factory),
        torch.nn.BatchNorm2d(4, **factory),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 8, 3, padding=1, **factory),
        torch.nn.BatchNorm2d(8, **factory),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Dropout(0.25),
        torch.nn.Linear(8 * 2 * 2, 3, **factory),
    )


def batches(steps: int, seed: int = 1, n: int = 16):
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(n, 1, 8, 8, dtype=F64, generator=generator)
        yield x, torch.randint(0, 3, (n,), generator=generator)


def train_ours(model: fw.Sequential, steps: int, seed: int = 1) -> None:
    criterion = fw.CrossEntropyLoss()
    optimizer = fw.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for x, y in batches(steps, seed):
        criterion(model(x), y)
        optimizer.zero_grad()
        model.backward(criterion.backward())
        optimizer.step()


# -- state_dict -------------------------------------------------------------------------------
def test_cnn_state_dict_keys_order_and_dtypes_equal_torch():
    for dtype in (torch.float32, F64):
        ours = [(k, tuple(v.shape), v.dtype) for k, v in cnn(dtype).state_dict().items()]
        theirs = [(k, tuple(v.shape), v.dtype) for k, v in torch_cnn(dtype).state_dict().items()]
        assert ours == theirs
    keys = list(cnn().state_dict())
    assert keys[:9] == [
        "0.weight",
        "0.bias",
        "1.weight",
        "1.bias",
        "1.running_mean",
        "1.running_var",
        "1.num_batches_tracked",
        "4.weight",
        "4.bias",
    ]
    assert keys[-2:] == ["10.weight", "10.bias"]


def test_cnn_state_dict_loads_into_torch_and_back_strictly():
    ours = cnn()
    train_ours(ours, steps=3)  # running statistics and counters away from their defaults
    theirs = torch_cnn()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    for key, value in ours.state_dict().items():
        assert torch.equal(theirs.state_dict()[key], value), key
    assert theirs.state_dict()["1.num_batches_tracked"].item() == 3

    x, _ = next(batches(1, seed=9))
    ours.eval()
    theirs.eval()
    torch.testing.assert_close(ours(x), theirs(x).detach(), atol=1e-12, rtol=1e-12)

    fresh = cnn(seed=5)
    fresh.load_state_dict(theirs.state_dict(), strict=True)
    for key, value in theirs.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
        assert fresh.state_dict()[key].dtype == value.dtype, key


# -- a whole training trajectory --------------------------------------------------------------
def test_cnn_trajectory_equals_torch_twin_for_20_steps(parity):
    """20 steps of SGD(momentum) in training mode (batch statistics, dropout), then eval mode:
    losses, dL/dx, every parameter and buffer equal the twin's within 1e-10."""
    model, criterion = cnn(), fw.CrossEntropyLoss()
    twin, twin_criterion = torch_twin(model), torch_loss(criterion)
    assert isinstance(twin[9], SameMaskDropout)  # replays our masks
    optimizer = fw.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    twin_optimizer = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    for step, (x, y) in enumerate(batches(20)):
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        grad_input = model.backward(criterion.backward())
        optimizer.step()

        x_ref = x.clone().requires_grad_()
        loss_ref = twin_criterion(twin(x_ref), y)
        twin_optimizer.zero_grad()
        loss_ref.backward()
        twin_optimizer.step()
        parity.check(f"cnn step {step} loss", loss, loss_ref)
        parity.check(f"cnn step {step} grad_input", grad_input, x_ref.grad)
    twin_state = twin.state_dict()
    for key, value in model.state_dict().items():
        parity.check(f"cnn after 20 steps {key}", value, twin_state[key])
    assert model.state_dict()["5.num_batches_tracked"].item() == 20

    model.eval()
    twin.eval()
    x, _ = next(batches(1, seed=3))
    parity.check("cnn eval output", model(x), twin(x))


# -- train/eval reach every module ------------------------------------------------------------
def test_train_and_eval_reach_nested_sequentials():
    inner = fw.Sequential(fw.BatchNorm1d(3), fw.Dropout(0.5))
    model = fw.Sequential(fw.Linear(4, 3), fw.Sequential(inner, fw.ReLU()), fw.Linear(3, 2))
    assert model.eval() is model
    assert [module.training for module in model.modules()] == [False] * 8
    x = torch.randn(5, 3)
    assert torch.equal(inner(x), inner[0](x))  # eval: dropout is the identity
    model.train()
    assert all(module.training for module in model.modules())
    assert inner[0].num_batches_tracked.data.item() == 0  # eval did not count batches
