"""Shared checks for the layer tests: one layer against its torch.nn twin under torch.autograd,
and against central differences (no autograd); the public layer and loss classes of ``fw`` and a
small example of each."""

from __future__ import annotations

from collections.abc import Callable

import torch
from gradcheck import central_difference

import framework as fw

FD_TOLERANCE = {"atol": 1e-7, "rtol": 1e-6}
F64 = torch.float64

# The Module subclasses of fw.__all__ that are bases to build layers from, not layers: each one
# leaves forward (Module, Activation) or the criterion (Loss) to its subclasses.
ABSTRACT_MODULES = {
    fw.Module: "the base class: forward and backward raise NotImplementedError",
    fw.Activation: "the base of the element-wise layers: no forward of its own",
    fw.Loss: "the base of the criteria: no forward or gradient of its own",
}


def public_modules() -> list[type[fw.Module]]:
    """Every public layer and loss class (``fw.__all__``), the abstract bases excepted."""
    found = [getattr(fw, name) for name in fw.__all__]
    return [
        cls
        for cls in found
        if isinstance(cls, type) and issubclass(cls, fw.Module) and cls not in ABSTRACT_MODULES
    ]


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, dtype=F64, generator=torch.Generator().manual_seed(seed))


def _mlp() -> fw.Sequential:
    layers = (fw.Linear(3, 4), fw.Tanh(), fw.Linear(4, 4), fw.ReLU(), fw.Linear(4, 2))
    return fw.Sequential(*layers).double()


# One small float64 example of every public layer and loss: the module and its forward's
# arguments (a criterion's: input and target).
Example = Callable[[], tuple[fw.Module, tuple[torch.Tensor, ...]]]
EXAMPLES: dict[type[fw.Module], Example] = {
    fw.Linear: lambda: (fw.Linear(3, 2, dtype=F64), (_randn(4, 3),)),
    fw.ReLU: lambda: (fw.ReLU(), (_randn(4, 3),)),
    fw.Tanh: lambda: (fw.Tanh(), (_randn(4, 3),)),
    fw.Sigmoid: lambda: (fw.Sigmoid(), (_randn(4, 3),)),
    fw.LeakyReLU: lambda: (fw.LeakyReLU(0.2), (_randn(4, 3),)),
    fw.ELU: lambda: (fw.ELU(0.5), (_randn(4, 3),)),
    fw.GELU: lambda: (fw.GELU("tanh"), (_randn(4, 3),)),
    fw.Conv2d: lambda: (fw.Conv2d(2, 3, 3, padding=1, dtype=F64), (_randn(2, 2, 5, 5),)),
    fw.MaxPool2d: lambda: (fw.MaxPool2d(3, 2, 1), (_randn(2, 2, 5, 5),)),
    fw.Flatten: lambda: (fw.Flatten(), (_randn(2, 2, 3, 3),)),
    fw.Dropout: lambda: (
        fw.Dropout(0.5, generator=torch.Generator().manual_seed(0)),
        (_randn(4, 3),),
    ),
    fw.BatchNorm1d: lambda: (fw.BatchNorm1d(3, dtype=F64), (_randn(4, 3),)),
    fw.BatchNorm2d: lambda: (fw.BatchNorm2d(2, dtype=F64), (_randn(2, 2, 3, 3),)),
    fw.Sequential: lambda: (_mlp(), (_randn(4, 3),)),
    fw.StackedLinear: lambda: (fw.StackedLinear(2, 3, 4, dtype=F64), (_randn(2, 4, 3),)),
    fw.StackedSequential: lambda: (fw.stack([_mlp(), _mlp()]), (_randn(2, 4, 3),)),
    fw.StackedConv2d: lambda: (
        fw.StackedConv2d(2, 2, 3, 3, padding=1, dtype=F64),
        (_randn(2, 2, 2, 5, 5),),
    ),
    fw.StackedMaxPool2d: lambda: (fw.StackedMaxPool2d(2, 3, 2, 1), (_randn(2, 2, 2, 5, 5),)),
    fw.StackedFlatten: lambda: (fw.StackedFlatten(2), (_randn(2, 2, 2, 3, 3),)),
    fw.StackedBatchNorm1d: lambda: (fw.StackedBatchNorm1d(2, 3, dtype=F64), (_randn(2, 4, 3),)),
    fw.StackedBatchNorm2d: lambda: (
        fw.StackedBatchNorm2d(2, 2, dtype=F64),
        (_randn(2, 2, 2, 3, 3),),
    ),
    fw.StackedDropout: lambda: (
        fw.StackedDropout(2, 0.5, generators=[torch.Generator().manual_seed(k) for k in (0, 1)]),
        (_randn(2, 4, 3),),
    ),
    fw.MSELoss: lambda: (fw.MSELoss(), (_randn(4, 2), _randn(4, 2, seed=1))),
    fw.BCELoss: lambda: (fw.BCELoss(), (_randn(4, 2).sigmoid(), _randn(4, 2, seed=1).sigmoid())),
    fw.CrossEntropyLoss: lambda: (
        fw.CrossEntropyLoss(),
        (_randn(4, 3), torch.tensor([0, 2, 1, 1])),
    ),
    fw.StackedLoss: lambda: (
        fw.StackedLoss(fw.MSELoss()),
        (_randn(2, 4, 1), _randn(2, 4, 1, seed=1)),
    ),
}


def example(cls: type[fw.Module]) -> tuple[fw.Module, tuple[torch.Tensor, ...]]:
    """``EXAMPLES[cls]()`` under a fixed global seed (default initialisations draw from it), so
    two calls give the same weights; torch's global generator is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return EXAMPLES[cls]()


def is_criterion(cls: type[fw.Module]) -> bool:
    """A loss: called with (input, target), backward takes no gradient."""
    return issubclass(cls, (fw.Loss, fw.StackedLoss))


def in_layout(x: torch.Tensor, order: tuple[int, ...]) -> torch.Tensor:
    """``x``'s values in memory ordered by ``order`` (outermost dimension first): the layers must
    give the same results whatever the strides of what they receive."""
    inverse = [order.index(d) for d in range(len(order))]
    return x.permute(*order).contiguous().permute(*inverse)


def compare_with_autograd(
    parity,
    case: str,
    ours: fw.Module,
    theirs: torch.nn.Module,
    x: torch.Tensor,
    grad_output: torch.Tensor | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward output, dL/dx and every dL/dparameter of ``ours`` equal torch.autograd's through
    ``theirs`` (which must hold the same state). ``grad_output`` defaults to random values.
    Returns (our output, our dL/dx)."""
    y = ours(x)
    if grad_output is None:
        generator = torch.Generator().manual_seed(seed)
        grad_output = torch.randn(y.shape, dtype=y.dtype, generator=generator)
    grad_input = ours.backward(grad_output)

    x_ref = x.detach().clone().requires_grad_()
    y_ref = theirs(x_ref)
    y_ref.backward(grad_output)

    parity.check(f"{case} forward", y, y_ref)
    parity.check(f"{case} grad_input", grad_input, x_ref.grad)
    torch_params = dict(theirs.named_parameters())
    assert [name for name, _ in ours.named_parameters()] == list(torch_params)
    for name, param in ours.named_parameters():
        parity.check(f"{case} grad {name}", param.grad, torch_params[name].grad)
    return y, grad_input


def check_central_differences(
    layer: fw.Module, x: torch.Tensor, generator: torch.Generator, params: bool = True
) -> None:
    """dL/dx and dL/dparameters of ``layer`` for L = Σ y ⊙ g equal central differences of L."""
    y = layer(x)
    grad_output = torch.randn(y.shape, dtype=y.dtype, generator=generator)
    grad_input = layer.backward(grad_output)

    def objective() -> float:  # L = Σ y ⊙ g, so dL/dy = g
        return (layer(x) * grad_output).sum().item()

    torch.testing.assert_close(grad_input, central_difference(objective, x), **FD_TOLERANCE)
    for name, param in layer.named_parameters() if params else ():
        numeric = central_difference(objective, param.data)
        torch.testing.assert_close(param.grad, numeric, **FD_TOLERANCE, msg=name)
