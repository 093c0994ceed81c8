"""Shared checks for the layer tests: one layer against its torch.nn twin under torch.autograd,
and against central differences (no autograd)."""

from __future__ import annotations

import torch
from gradcheck import central_difference

import framework as fw

FD_TOLERANCE = {"atol": 1e-7, "rtol": 1e-6}


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
