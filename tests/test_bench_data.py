"""The data set and the generators of the equivalence protocol."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest
import torch

from bench.harness import data
from bench.harness.spec import DataSpec


def fold_split(seed: int, fold: int, dataset: str = "disk", **changes) -> data.Split:
    """Fold ``fold`` of seed ``seed``, the dataset at its registry defaults but ``changes``."""
    return data.fold_split(DataSpec.of(dataset, **changes), seed, fold)


def digest(split: data.Split) -> str:
    sha = hashlib.sha256()
    for tensor in (split.x_train, split.y_train, split.x_test, split.y_test):
        sha.update(tensor.numpy().tobytes())
    return sha.hexdigest()


@pytest.mark.parametrize("fold", range(10))
def test_disk_labels_balanced_near_half_seed0_fold(fold):
    split = fold_split(seed=0, fold=fold)
    for labels in (split.y_train, split.y_test):
        assert labels.shape == (1000, 1)
        assert abs(labels.mean().item() - 0.5) < 0.05  # area of the disk is exactly 1/2


def test_disk_labels_match_geometry_recomputed():
    split = fold_split(seed=3, fold=1)
    x = split.x_train
    inside = ((x[:, 0] - 0.5) ** 2 + (x[:, 1] - 0.5) ** 2) < 1 / (2 * torch.pi)
    assert torch.equal(split.y_train.squeeze(1).bool(), inside)
    assert bool(((x >= 0) & (x <= 1)).all())


def test_radius_is_configurable():
    small = fold_split(seed=0, fold=0, radius=0.2)
    assert small.y_train.mean().item() == pytest.approx(torch.pi * 0.04, abs=0.04)


def test_same_seed_fold_same_tensors_in_a_new_process():
    code = (
        "import hashlib; from bench.harness import data; from bench.harness.spec import DataSpec\n"
        "s = data.fold_split(DataSpec.of('disk'), 7, 3); h = hashlib.sha256()\n"
        "for t in (s.x_train, s.y_train, s.x_test, s.y_test): h.update(t.numpy().tobytes())\n"
        "print(h.hexdigest())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == digest(fold_split(7, 3))


def test_folds_and_seeds_give_different_data():
    digests = {digest(fold_split(seed, fold)) for seed in (0, 1) for fold in (0, 1)}
    assert len(digests) == 4


def test_streams_are_independent_draws():
    draws = [
        torch.rand(5, generator=data.generator(0, 0, stream))
        for stream in ("data", "init", "shuffle")
    ]
    assert not torch.equal(draws[0], draws[1]) and not torch.equal(draws[1], draws[2])
    again = torch.rand(5, generator=data.generator(0, 0, "init"))
    assert torch.equal(draws[1], again)


def test_float32_and_float64_see_the_same_points():
    split = fold_split(0, 0)
    as32, as64 = split.to("cpu", torch.float32), split.to("cpu", torch.float64)
    assert torch.equal(as32.y_train.double(), as64.y_train)
    assert torch.allclose(as32.x_train.double(), as64.x_train, atol=1e-7)


def test_digits_split_is_a_seeded_partition_of_the_bundled_images():
    a = fold_split(0, 3, "digits")
    b = fold_split(0, 3, "digits")
    c = fold_split(0, 4, "digits")
    assert a.x_train.shape == (1437, 1, 8, 8) and a.x_test.shape == (360, 1, 8, 8)
    assert a.y_train.dtype == torch.int64 and set(a.y_train.tolist()) == set(range(10))
    assert torch.equal(a.x_train, b.x_train) and not torch.equal(a.x_train, c.x_train)
    assert a.x_train.min() >= 0 and a.x_train.max() <= 1
    # train and test are disjoint: together they are the 1,797 images, each exactly once
    from sklearn.datasets import load_digits

    bundled = torch.as_tensor(load_digits().images, dtype=torch.float64).flatten(1) / 16
    split = torch.cat([a.x_train, a.x_test]).flatten(1)
    assert torch.equal(*(torch.unique(t, dim=0, return_counts=True)[1] for t in (split, bundled)))
    assert torch.equal(torch.unique(split, dim=0), torch.unique(bundled, dim=0))
    moved = a.to(torch.device("cpu"), torch.float32)
    assert moved.x_train.dtype == torch.float32 and moved.y_train.dtype == torch.int64


def test_moons_without_noise_lie_on_their_half_circles_balanced_and_shuffled():
    split = fold_split(0, 2, "moons", noise=0.0, n_train=1000, n_test=200)
    x, y = split.x_train, split.y_train.squeeze(1)
    assert x.shape == (1000, 2) and split.x_test.shape == (200, 2)
    assert y.sum().item() == 500  # exactly half of each class
    assert not torch.equal(y[:500], torch.ones(500, dtype=y.dtype))  # in a random order
    upper, lower = x[y == 0], x[y == 1]
    # class 0 on the unit circle's upper half; class 1 on the same circle centred (1, 1/2), lower
    torch.testing.assert_close(upper.square().sum(1), torch.ones(500, dtype=x.dtype))
    assert bool((upper[:, 1] >= 0).all())
    centred = lower - torch.tensor([1.0, 0.5], dtype=x.dtype)
    torch.testing.assert_close(centred.square().sum(1), torch.ones(500, dtype=x.dtype))
    assert bool((centred[:, 1] <= 0).all())


def test_moons_noise_is_gaussian_of_the_configured_sd():
    clean = fold_split(0, 0, "moons", noise=0.0, n_train=20000)
    noisy = fold_split(0, 0, "moons", noise=0.3, n_train=20000)
    assert torch.equal(clean.y_train, noisy.y_train)  # the same draws, noise added last
    residual = noisy.x_train - clean.x_train
    assert residual.std().item() == pytest.approx(0.3, rel=0.02)
    assert residual.mean().abs().item() < 0.01


def test_moons_refuse_a_negative_noise_naming_it(tmp_path):
    from bench_utils import compose

    from bench.harness import app

    with pytest.raises(app.config.ConfigError, match=r"data\.noise=-0\.1"):
        app.run(compose("dataset=moons", "data.noise=-0.1"), tmp_path)


# -- vary=crossed: every (data, init, shuffle) combination of L draws once --------------------


@pytest.mark.parametrize("levels", [2, 5, 6])
def test_crossed_folds_use_every_combination_of_draws_exactly_once(levels):
    folds = levels**3
    combos = [
        tuple(data.stream_fold("crossed", k, stream, folds) for stream in data.STREAMS)
        for k in range(folds)
    ]
    assert sorted(combos) == [
        (i, j, k) for i in range(levels) for j in range(levels) for k in range(levels)
    ]
    # fold k: data draw k // L², init draw (k // L) % L, shuffle draw k % L
    assert combos[levels**2 + (levels - 1) * levels + 1] == (1, levels - 1, 1)


def test_the_report_decodes_a_crossed_fold_to_the_draws_the_harness_uses():
    import numpy as np

    from bench.report import variance

    for folds in (8, 125, 216):
        fold = np.arange(folds)
        decoded = variance.fold_draws(fold, np.full(folds, folds))
        for column, stream in zip(variance.DRAW_COLUMNS, data.STREAMS, strict=True):
            harness = [data.stream_fold("crossed", k, stream, folds) for k in range(folds)]
            assert decoded[column].tolist() == harness


@pytest.mark.parametrize("vary", ["all", "data", "init", "shuffle"])
@pytest.mark.parametrize("folds", [1, 8, 30])
def test_the_other_vary_values_keep_their_draws_whatever_the_number_of_folds(vary, folds):
    for k in range(folds):
        for stream in data.STREAMS:
            expected = k if vary in ("all", stream) else 0
            assert data.stream_fold(vary, k, stream, folds) == expected


@pytest.mark.parametrize("folds", [1, 7, 30, 100])
def test_crossed_refuses_folds_that_are_not_a_cube_of_two_or_more_levels(folds):
    with pytest.raises(ValueError, match="folds"):
        data.stream_fold("crossed", 0, "data", folds)


@pytest.mark.parametrize("folds", [1, 9, 30, 124])
def test_config_refuses_crossed_unless_folds_is_a_cube_naming_folds(tmp_path, folds):
    from bench_utils import compose

    from bench.harness import app

    with pytest.raises(app.config.ConfigError, match=rf"folds={folds}.*L\*\*3"):
        app.run(compose("vary=crossed", f"folds={folds}"), tmp_path)


def test_config_accepts_crossed_with_a_cube_of_folds():
    from bench_utils import compose

    from bench.harness import config

    spec = config.job_spec(compose("vary=crossed", "folds=27"))
    assert spec.training.vary == "crossed" and spec.training.folds == 27


def test_a_crossed_job_trains_each_fold_on_its_combination_of_draws(tmp_path, monkeypatch):
    """Through the engine: fold k's points, initial weights and batch order are those of the
    draws stream_fold gives (the same as the vary=all folds of those indices)."""
    from bench_utils import SMALL, compose

    from bench.harness import config, engines

    job = config.job_spec(compose(*[o for o in SMALL if not o.startswith("folds")],
                                  "vary=crossed", "folds=8"))  # fmt: skip
    every = config.job_spec(compose(*[o for o in SMALL if not o.startswith("folds")], "folds=8"))
    for k in range(8):
        i, j, s = (k // 4, (k // 2) % 2, k % 2)
        assert torch.equal(engines.split(job, k).x_train, engines.split(every, i).x_train)
        for stream, draw in (("init", j), ("shuffle", s)):
            ours = torch.rand(3, generator=engines.stream(job, k, stream))
            assert torch.equal(ours, torch.rand(3, generator=engines.stream(every, draw, stream)))
