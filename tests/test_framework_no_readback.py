"""A training step reads nothing back to the host, on any device: no ``.item()``, ``.tolist()``,
``bool(tensor)`` or Python ``if`` on a tensor, no ``float(tensor)``. On a GPU each such read
waits for the device to finish the step so far, every step.

Proved two ways for every layer, loss and optimizer option, stacked and unstacked, with float,
per-model and 0-dim tensor hyperparameters:

- on the CPU with every read-back entry point of ``torch.Tensor`` (and the torch functions that
  return a Python bool) patched to raise during the steps;
- on the ``meta`` device, where tensors have shapes but no values, so any read raises;
- on a GPU (skipped without one) under ``torch.cuda.set_sync_debug_mode("error")``.

Construction (validating hyperparameters) and evaluation may read values; only the steps are
checked. The checker itself is shown to catch each kind of read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest
import torch

import framework as fw

READ_BACK_METHODS = (
    "item",
    "tolist",
    "numpy",
    "__bool__",
    "__float__",
    "__int__",
    "__index__",
    "__complex__",
    "__array__",
    "__repr__",
    "__format__",
)
READ_BACK_FUNCTIONS = ("equal", "is_nonzero", "allclose")


class ReadBack(AssertionError):
    pass


@contextlib.contextmanager
def no_read_back() -> Iterator[None]:
    """Every way Python code gets a tensor's value on the host raises ReadBack inside."""

    def refuse(name: str) -> Callable:
        def raiser(*args, **kwargs):
            raise ReadBack(f"the training step read a value back: {name}")

        return raiser

    with pytest.MonkeyPatch.context() as patch:
        for name in READ_BACK_METHODS:
            patch.setattr(torch.Tensor, name, refuse(f"Tensor.{name}"))
        for name in READ_BACK_FUNCTIONS:
            patch.setattr(torch, name, refuse(f"torch.{name}"))
        yield


READS = {
    "item": lambda t: t.sum().item(),
    "tolist": lambda t: t.tolist(),
    "if": lambda t: 1 if (t > 0).any() else 0,
    "float": lambda t: float(t.sum()),
    "int_index": lambda t: [0, 1][t.argmax() % 2],
    "equal": lambda t: torch.equal(t, t),
    "format": lambda t: f"{t.sum():.3f}",
    "bce_check": lambda t: fw.BCELoss(check=True)(t.sigmoid(), t.sigmoid()),
    "cross_entropy_check": lambda t: fw.CrossEntropyLoss(check=True)(t, t.argmax(1)),
}


@pytest.mark.parametrize("read", READS)
def test_the_checker_catches_each_kind_of_read_back(read):
    x = torch.randn(4, 3)
    READS[read](x)  # fine outside
    with no_read_back(), pytest.raises(ReadBack):
        READS[read](x)


# -- the configurations ---------------------------------------------------------------------------
OPTIMIZERS = {
    "sgd": lambda params: fw.optim.SGD(
        params, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1
    ),
    "sgd_dampening": lambda params: fw.optim.SGD(params, lr=0.1, momentum=0.9, dampening=0.5),
    "adam": lambda params: fw.optim.Adam(params, lr=0.01, weight_decay=0.1),
    "adamw": lambda params: fw.optim.AdamW(params, lr=0.01, weight_decay=0.1),
    "rmsprop": lambda params: fw.optim.RMSprop(
        params, lr=0.01, momentum=0.9, centered=True, weight_decay=0.1
    ),
}


def per_model(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


STACKED_OPTIMIZERS = {  # every hyperparameter per model
    "sgd": lambda params: fw.optim.SGD(
        params,
        lr=per_model([0.1, 0.2]),
        momentum=per_model([0.9, 0.5]),
        dampening=per_model([0.0, 0.1]),
        weight_decay=per_model([0.0, 0.1]),
    ),
    "sgd_nesterov": lambda params: fw.optim.SGD(
        params, lr=per_model([0.1, 0.2]), momentum=per_model([0.9, 0.5]), nesterov=True
    ),
    "adam": lambda params: fw.optim.Adam(
        params,
        lr=per_model([0.01, 0.02]),
        betas=(per_model([0.9, 0.5]), per_model([0.99, 0.9])),
        eps=per_model([1e-8, 1e-6]),
        weight_decay=per_model([0.0, 0.1]),
    ),
    "adamw": lambda params: fw.optim.AdamW(
        params, lr=per_model([0.01, 0.02]), weight_decay=per_model([0.0, 0.1])
    ),
    "rmsprop": lambda params: fw.optim.RMSprop(
        params,
        lr=per_model([0.01, 0.02]),
        alpha=per_model([0.99, 0.9]),
        eps=per_model([1e-8, 1e-6]),
        momentum=per_model([0.0, 0.9]),
        weight_decay=per_model([0.0, 0.1]),
        centered=True,
    ),
}
LOSSES = ["mse", "bce", "cross_entropy"]


def mlp(loss: str) -> fw.Sequential:
    """Every element-wise layer, and the output the loss needs."""
    out = 3 if loss == "cross_entropy" else 1
    layers = [
        fw.Linear(2, 4), fw.ReLU(), fw.Linear(4, 4), fw.ELU(), fw.Linear(4, 4), fw.LeakyReLU(),
        fw.Linear(4, 4), fw.Tanh(), fw.Linear(4, 4), fw.Sigmoid(), fw.Linear(4, out),
    ]  # fmt: skip
    if loss == "bce":
        layers.append(fw.Sigmoid())
    return fw.Sequential(*layers).double()


def criterion(loss: str) -> fw.Loss:
    return {"mse": fw.MSELoss, "bce": fw.BCELoss, "cross_entropy": fw.CrossEntropyLoss}[loss]()


def data(loss: str, shape: tuple[int, ...], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs of ``shape + (2,)`` and targets for ``loss``, built on the CPU and moved."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, 2, dtype=torch.float64, generator=generator)
    if loss == "cross_entropy":
        y = torch.randint(0, 3, shape, generator=generator)
    else:
        y = torch.randint(0, 2, (*shape, 1), generator=generator).double()
    return x.to(device), y.to(device)


def steps(model: fw.Module, loss_fn, optimizer, x, y, zero_grad: str, count: int = 3) -> None:
    for _ in range(count):
        loss_fn(model(x), y)
        (optimizer.zero_grad if zero_grad == "optimizer" else model.zero_grad)()
        model.backward(loss_fn.backward())
        optimizer.step()


DEVICES = ["cpu-patched", "meta"]


def run(device: str, step: Callable[[str], None]) -> None:
    if device == "meta":
        step("meta")
    else:
        with no_read_back():
            step("cpu")


@pytest.mark.parametrize("zero_grad", ["optimizer", "model"])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("device", DEVICES)
def test_mlp_training_step_reads_nothing_back(device, loss, optimizer, zero_grad):
    def step(where: str) -> None:
        model = mlp(loss).to(device=where)
        built = OPTIMIZERS[optimizer](model.parameters())
        steps(model, criterion(loss), built, *data(loss, (5,), where), zero_grad)
        assert all(p.data.device.type == where for p in model.parameters())

    run(device, step)


@pytest.mark.parametrize("zero_grad", ["optimizer", "model"])
@pytest.mark.parametrize("optimizer", STACKED_OPTIMIZERS)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("device", DEVICES)
def test_stacked_training_step_reads_nothing_back(device, loss, optimizer, zero_grad):
    """Per-model hyperparameters too: validated (read) at construction, on the CPU; the
    steps, which build and use their per-element vectors, read nothing."""
    models = [mlp(loss), mlp(loss)]
    stacked = fw.stack(models)
    built = STACKED_OPTIMIZERS[optimizer](stacked.parameters())

    def step(where: str) -> None:
        stacked.to(device=where)
        x, y = data(loss, (2, 5), where)
        steps(stacked, fw.StackedLoss(criterion(loss)), built, x, y, zero_grad)
        assert all(p.data.device.type == where for p in stacked.parameters())

    run(device, step)


def scalar(value: float) -> torch.Tensor:
    return torch.tensor(value, dtype=torch.float64)


SCALAR_TENSOR_OPTIMIZERS = {  # every number a 0-dim tensor (torch's lr=torch.tensor(0.01))
    "sgd": lambda params: fw.optim.SGD(
        params, lr=scalar(0.1), momentum=scalar(0.9), dampening=scalar(0.1),
        weight_decay=scalar(0.1),
    ),
    "adam": lambda params: fw.optim.Adam(
        params, lr=scalar(0.01), betas=(scalar(0.9), scalar(0.99)), eps=scalar(1e-8),
        weight_decay=scalar(0.1),
    ),
    "adamw": lambda params: fw.optim.AdamW(params, lr=scalar(0.01), weight_decay=scalar(0.1)),
    "rmsprop": lambda params: fw.optim.RMSprop(
        params, lr=scalar(0.01), alpha=scalar(0.9), eps=scalar(1e-8), momentum=scalar(0.5),
        weight_decay=scalar(0.1), centered=True,
    ),
}  # fmt: skip


@pytest.mark.parametrize("optimizer", SCALAR_TENSOR_OPTIMIZERS)
@pytest.mark.parametrize("device", DEVICES)
def test_0dim_tensor_hyperparameters_step_reads_nothing_back(device, optimizer):
    """Validated (read) at construction, on the CPU; the steps use them as broadcast scalars."""
    model = mlp("mse")
    built = SCALAR_TENSOR_OPTIMIZERS[optimizer](model.parameters())

    def step(where: str) -> None:
        model.to(device=where)
        steps(model, criterion("mse"), built, *data("mse", (5,), where), "optimizer")
        assert all(p.data.device.type == where for p in model.parameters())

    run(device, step)


@pytest.mark.parametrize("pool", [(2,), (3, 2, 1)], ids=["pool2", "pool3-2-padding1"])
@pytest.mark.parametrize("momentum", [0.1, None], ids=["momentum", "cumulative"])
@pytest.mark.parametrize("device", DEVICES)
def test_cnn_training_step_reads_nothing_back(device, momentum, pool):
    """Conv2d, BatchNorm2d/1d (both running-average rules), MaxPool2d (with and without
    padding: both give 2×2 here), Flatten, Dropout."""

    def step(where: str) -> None:
        model = fw.Sequential(
            fw.Conv2d(1, 4, 3, padding=1), fw.BatchNorm2d(4, momentum=momentum), fw.ReLU(),
            fw.MaxPool2d(*pool), fw.Flatten(), fw.Dropout(0.5), fw.Linear(16, 3),
            fw.BatchNorm1d(3, momentum=momentum),
        ).to(device=where)  # fmt: skip
        generator = torch.Generator(where if where != "meta" else "cpu").manual_seed(0)
        if where != "meta":
            model[5].generator = generator
        optimizer = fw.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        x = torch.randn(5, 1, 4, 4).to(where)
        y = torch.randint(0, 3, (5,)).to(where)
        steps(model, fw.CrossEntropyLoss(), optimizer, x, y, "optimizer")
        model.eval()
        model(x)  # eval forward (running statistics) too

    run(device, step)


def test_batchnorm_cumulative_average_equals_torch(parity):
    """The on-device cumulative average (momentum=None) still matches torch's running stats."""
    ours = fw.BatchNorm1d(3, momentum=None).double()
    theirs = torch.nn.BatchNorm1d(3, momentum=None).double()
    generator = torch.Generator().manual_seed(0)
    for step in range(5):
        x = torch.randn(8, 3, dtype=torch.float64, generator=generator) * (step + 1)
        ours(x)
        theirs(x)
    parity.check("batchnorm cumulative running_mean", ours.running_mean.data, theirs.running_mean)
    parity.check("batchnorm cumulative running_var", ours.running_var.data, theirs.running_var)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("loss", LOSSES)
def test_stacked_step_on_cuda_never_synchronizes(loss):
    stacked = fw.stack([mlp(loss), mlp(loss)]).to(device="cuda")
    optimizer = STACKED_OPTIMIZERS["adam"](stacked.parameters())
    x, y = data(loss, (2, 5), "cuda")
    stacked_loss = fw.StackedLoss(criterion(loss))
    steps(stacked, stacked_loss, optimizer, x, y, "optimizer", count=1)  # warm-up
    torch.cuda.synchronize()
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        steps(stacked, stacked_loss, optimizer, x, y, "model")
    finally:
        torch.cuda.set_sync_debug_mode(previous)


@pytest.mark.parametrize("momentum", [0.1, None], ids=["momentum", "cumulative"])
@pytest.mark.parametrize("device", DEVICES)
def test_stacked_cnn_training_step_reads_nothing_back(device, momentum):
    """Every stacked CNN layer: StackedConv2d, StackedBatchNorm2d/1d (both running-average
    rules), StackedMaxPool2d (padded), StackedFlatten, StackedDropout; then an eval forward."""

    def model() -> fw.Sequential:
        return fw.Sequential(
            fw.Conv2d(1, 4, 3, padding=1), fw.BatchNorm2d(4, momentum=momentum), fw.ReLU(),
            fw.MaxPool2d(3, 2, 1), fw.Flatten(),
            fw.Dropout(0.5, generator=torch.Generator().manual_seed(0)), fw.Linear(16, 3),
            fw.BatchNorm1d(3, momentum=momentum),
        )  # fmt: skip

    stacked = fw.stack([model(), model()])
    optimizer = fw.optim.SGD(stacked.parameters(), lr=per_model([0.1, 0.2]), momentum=0.9)

    def step(where: str) -> None:
        stacked.to(device=where)
        if where == "meta":  # a meta tensor draws from no generator
            stacked[5].generators = [None, None]
        x = torch.randn(2, 5, 1, 4, 4).to(where)
        y = torch.randint(0, 3, (2, 5)).to(where)
        steps(stacked, fw.StackedLoss(fw.CrossEntropyLoss()), optimizer, x, y, "optimizer")
        stacked.eval()
        stacked(x)
        stacked.train()

    run(device, step)
