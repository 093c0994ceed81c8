"""Central differences: a gradient check that needs no torch.autograd."""

from __future__ import annotations

from collections.abc import Callable

import torch


def central_difference(f: Callable[[], float], tensor: torch.Tensor, h: float = 1e-6):
    """dF/dtensor by (F(t + h) − F(t − h)) / 2h, one entry at a time (tensor changed in place)."""
    flat = tensor.view(-1)
    grad = torch.empty_like(flat)
    for i in range(flat.numel()):
        original = flat[i].item()
        flat[i] = original + h
        up = f()
        flat[i] = original - h
        down = f()
        flat[i] = original
        grad[i] = (up - down) / (2 * h)
    return grad.view_as(tensor)
