"""The framework is what it claims to be: torch tensor operations only (no torch.nn, torch.optim,
torch.autograd, torch.func, no autograd on tensors), never imports the harness, and hard-codes
no device, so the same code runs on any device torch has (checked on ``meta``, and on CUDA when
there is one)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import framework as fw
from bench.harness.reference import torch_loss, torch_twin

FRAMEWORK = Path(fw.__file__).resolve().parent
SOURCES = sorted(FRAMEWORK.rglob("*.py"))
FORBIDDEN_MODULES = (
    "torch.nn",
    "torch.optim",
    "torch.autograd",
    "torch.func",
    "functorch",
    "bench",
)
# Autograd on tensors, whatever the spelling.
FORBIDDEN_ATTRIBUTES = {
    "requires_grad",
    "requires_grad_",
    "retain_grad",
    "enable_grad",
    "set_grad_enabled",
    "grad_fn",
    "autograd",
}


def _forbidden(module: str) -> bool:
    return any(module == bad or module.startswith(bad + ".") for bad in FORBIDDEN_MODULES)


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """``torch.nn.functional`` for an Attribute chain rooted at a name (aliases resolved)."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([aliases.get(node.id, node.id), *reversed(parts)])


def violations(source: str, filename: str = "<source>") -> list[str]:
    """Every use of a forbidden module or autograd feature in ``source``, as 'file:line: what'."""
    tree = ast.parse(source, filename)
    aliases: dict[str, str] = {}  # local name -> module it stands for
    found = []

    def flag(node: ast.AST, what: str) -> None:
        found.append(f"{filename}:{node.lineno}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _forbidden(alias.name):
                    flag(node, f"import {alias.name}")
                aliases[alias.asname or alias.name.partition(".")[0]] = (
                    alias.name if alias.asname else alias.name.partition(".")[0]
                )
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if (
                    _forbidden(node.module)
                    or _forbidden(full)
                    or alias.name in FORBIDDEN_ATTRIBUTES
                ):
                    flag(node, f"from {node.module} import {alias.name}")
                aliases[alias.asname or alias.name] = full
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            dotted = _dotted(node, aliases)
            if dotted and _forbidden(dotted):
                flag(node, dotted)
            elif node.attr in FORBIDDEN_ATTRIBUTES:
                flag(node, f".{node.attr}")
        elif isinstance(node, ast.Call):
            # tensor.backward() takes no argument; a framework Module's backward(grad) takes one.
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr == "backward" and not node.args:
                flag(node, "argument-less .backward(): torch autograd")
            for keyword in node.keywords:  # torch.zeros(2, requires_grad=True)
                if keyword.arg in FORBIDDEN_ATTRIBUTES:
                    flag(node, f"{keyword.arg}=")
            # Dynamic imports and getattr(torch, "nn").
            for arg in node.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    name = arg.value
                    if (
                        _forbidden(name)
                        or _forbidden(f"torch.{name}")
                        or name in FORBIDDEN_ATTRIBUTES
                    ):
                        flag(node, f"{ast.unparse(func)}({name!r})")
    return sorted(set(found))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(FRAMEWORK.parent)))
def test_framework_source_uses_no_autograd_nn_optim_or_harness(path):
    assert violations(path.read_text(), str(path)) == []


BAD_SNIPPETS = [
    "import torch.nn",
    "import torch.nn as nn",
    "import torch.nn.functional as F",
    "from torch import nn",
    "from torch import autograd",
    "from torch.nn import functional",
    "from torch.optim import SGD",
    "import torch.func",
    "from bench.harness import reference",
    "import torch\ny = torch.nn.functional.relu(x)",
    "import torch as T\nT.autograd.grad(y, x)",
    "import torch\nw = torch.zeros(2, requires_grad=True)",
    "x.requires_grad_()",
    "x.retain_grad()",
    "loss.backward()",
    "import torch\nwith torch.enable_grad():\n    pass",
    "from torch import enable_grad",
    "import torch\ntorch.set_grad_enabled(True)",
    "import importlib\nimportlib.import_module('torch.nn')",
    "import torch\ngetattr(torch, 'autograd')",
]


@pytest.mark.parametrize("snippet", BAD_SNIPPETS)
def test_purity_checker_catches(snippet):
    assert violations(snippet), f"not caught: {snippet!r}"


def test_purity_checker_allows_module_backward_and_plain_torch():
    clean = (
        "import torch\n"
        "from .module import Module\n"
        "y = torch.addmm(b, x, w.t())\n"
        "grad = layer.backward(grad)\n"
        "param.grad.add_(g)\n"
        '"""No torch.nn or torch.autograd here."""\n'
    )
    assert violations(clean) == []


# -- devices --------------------------------------------------------------------------------------
HARD_CODED_DEVICES = ("cuda", ".cpu()", 'device="cpu"', "device='cpu'", "torch.device(")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(FRAMEWORK.parent)))
def test_framework_source_hard_codes_no_device(path):
    found = [
        f"{path.name}:{number}: {needle!r}"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        for needle in HARD_CODED_DEVICES
        if needle in line
    ]
    assert found == []


def test_training_step_runs_on_meta_device():
    """No tensor of the step is created on a fixed device: on ``meta`` (shapes only, no data) a
    CPU tensor sneaking in would fail. (BCE is left out: it checks values, which meta has not.)"""
    model = fw.Sequential(
        fw.Linear(2, 4), fw.ReLU(), fw.Linear(4, 4), fw.ELU(), fw.Linear(4, 4), fw.LeakyReLU(),
        fw.Linear(4, 4), fw.Tanh(), fw.Linear(4, 1), fw.Sigmoid(),
    ).to(device="meta")  # fmt: skip
    criterion = fw.MSELoss()
    optimizers = [
        fw.optim.SGD(model[0].parameters(), momentum=0.9, nesterov=True, weight_decay=0.1),
        fw.optim.Adam(model[2].parameters(), weight_decay=0.1),
        fw.optim.RMSprop(model[4].parameters(), centered=True, momentum=0.9, weight_decay=0.1),
        fw.optim.RMSprop(list(model[6].parameters()) + list(model[8].parameters())),
    ]
    x, y = torch.empty(3, 2, device="meta"), torch.empty(3, 1, device="meta")
    for _ in range(2):
        loss = criterion(model(x), y)
        model.zero_grad()
        grad_input = model.backward(criterion.backward())
        for optimizer in optimizers:
            optimizer.step()
    assert loss.device.type == grad_input.device.type == "meta"
    assert all(p.data.device.type == p.grad.device.type == "meta" for p in model.parameters())


def test_cnn_training_step_runs_on_meta_device():
    """The same for the convolutional layers, BatchNorm's buffers and Dropout's masks (MSE on the
    logits: CrossEntropyLoss checks its class indices' values, which meta has not)."""
    model = fw.Sequential(
        fw.Conv2d(1, 4, 3, padding=1), fw.BatchNorm2d(4), fw.ReLU(), fw.MaxPool2d(2),
        fw.Flatten(), fw.Dropout(0.5), fw.Linear(16, 3), fw.BatchNorm1d(3),
    ).to(device="meta")  # fmt: skip
    criterion = fw.MSELoss()
    optimizer = fw.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.empty(5, 1, 4, 4, device="meta"), torch.empty(5, 3, device="meta")
    for _ in range(2):
        criterion(model(x), y)
        optimizer.zero_grad()
        grad_input = model.backward(criterion.backward())
        optimizer.step()
    assert grad_input.device.type == "meta" and grad_input.shape == x.shape
    state = model.state_dict()
    assert all(value.device.type == "meta" for value in state.values())
    assert state["1.num_batches_tracked"].dtype == torch.int64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("loss", [fw.MSELoss, fw.BCELoss], ids=["mse", "bce"])
def test_cuda_step_equals_torch_on_cuda(parity, loss):
    device = torch.device("cuda")
    generator = torch.Generator().manual_seed(0)
    model = fw.Sequential(
        fw.Linear(2, 8), fw.ReLU(), fw.Linear(8, 1), fw.Sigmoid(), generator=generator
    ).to(device=device, dtype=torch.float64)
    criterion = loss()
    twin, twin_criterion = torch_twin(model), torch_loss(criterion)
    x = torch.rand(16, 2, dtype=torch.float64, generator=generator).to(device)
    y = (x.sum(1, keepdim=True) > 1).to(torch.float64)
    optimizer = fw.optim.Adam(model.parameters(), lr=0.01)
    torch_optimizer = torch.optim.Adam(twin.parameters(), lr=0.01)
    for _ in range(3):
        value = criterion(model(x), y)
        optimizer.zero_grad()
        grad_input = model.backward(criterion.backward())
        optimizer.step()
        x_ref = x.clone().requires_grad_()
        value_ref = twin_criterion(twin(x_ref), y)
        torch_optimizer.zero_grad()
        value_ref.backward()
        torch_optimizer.step()
        parity.check(f"cuda {loss.__name__} loss", value, value_ref)
        parity.check(f"cuda {loss.__name__} grad_input", grad_input, x_ref.grad)
    twin_params = dict(twin.named_parameters())
    for name, param in model.named_parameters():
        assert param.data.is_cuda
        parity.check(
            f"cuda {loss.__name__} {name}", param.data, twin_params[name], atol=1e-12, rtol=1e-12
        )
