"""Evaluation in slices of a set (`bench.harness.training.predict`): the same predictions as
one forward."""

import pytest
import torch

import framework as fw


@pytest.mark.parametrize("stacked", [False, True], ids=["one_model", "stack_of_3"])
def test_evaluation_in_slices_of_the_set_equals_one_forward_of_the_cnn_float32(
    stacked: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench.harness import models, training

    torch.manual_seed(0)
    make = lambda: fw.Sequential(  # noqa: E731
        *models.cnn((1, 8, 8), 10, fw.ReLU, torch.float32, 64, 0, (16, 32))
    ).eval()
    model = fw.stack([make() for _ in range(3)]) if stacked else make()
    x = torch.randn(*((3,) if stacked else ()), 300, 1, 8, 8)
    whole = model(x)
    monkeypatch.setattr(training, "EVAL_VALUES", 64 * 64)  # slices of 64 images
    sliced = training.predict(model, x, 1 if stacked else 0)
    assert torch.equal(sliced, whole)
