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


@pytest.mark.parametrize("stacked", [False, True], ids=["one_model", "stack_of_3"])
def test_evaluation_in_slices_of_the_set_equals_one_forward_of_the_disk_mlp_float32(
    stacked: bool,
) -> None:
    """Equal to float32 rounding, not bitwise: MKL picks its product kernel by shape, and a
    slice's rows may round the last bit differently (measured: 1 ulp at some slice sizes)."""
    from bench.harness import models, training

    torch.manual_seed(0)
    make = lambda: fw.Sequential(*models.mlp((2,), 1, fw.ReLU, torch.float32, 25, 3))  # noqa: E731
    model = fw.stack([make() for _ in range(3)]) if stacked else make()
    x = torch.randn(*((3,) if stacked else ()), 1000, 2)
    whole = model(x)
    for rows in (8, 64, 100, 500):
        sliced = training.predict(model, x, 1 if stacked else 0, values=2 * rows)
        torch.testing.assert_close(sliced, whole, rtol=2**-22, atol=0)


@pytest.mark.parametrize("model", ["mlp", "cnn"])
@pytest.mark.parametrize("framework", ["custom", "torch"])
@pytest.mark.parametrize("stacked", [False, True], ids=["sequential", "stacked"])
def test_every_adapter_evaluates_in_slices_of_its_model_familys_size(
    model: str, framework: str, stacked: bool
) -> None:
    from bench_utils import compose

    from bench import registry
    from bench.harness import config, data, engines

    job = config.job_spec(compose("experiment=digits", f"model={model}", "folds=2"))
    inits = [data.generator(0, m, "init") for m in range(2 if stacked else 1)]
    adapter = engines.adapter(job, framework, inits, [0.1] * len(inits), stacked)
    assert adapter.eval_values == registry.entry("model", model).eval_values
    assert registry.entry("model", "cnn").eval_values < registry.entry("model", "mlp").eval_values
