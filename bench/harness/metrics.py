"""What the training loop measures, the same way for both frameworks."""

from __future__ import annotations

import torch


def errors(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per model, the fraction of examples misclassified (an exact count / n, not a float32
    mean): on the wrong side of 0.5 for a binary task, whose argmax logit is not the class for
    class indices. ``prediction`` and ``target`` carry a leading model dimension."""
    if target.is_floating_point():
        wrong = ((prediction > 0.5) != (target > 0.5)).flatten(1)
    else:
        wrong = prediction.argmax(dim=-1) != target
    return wrong.sum(dim=1) / wrong.shape[1]
