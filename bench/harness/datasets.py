"""The datasets, one function each, registered in `bench.registry`.

A dataset is ``draw(n_train, n_test, generator, **options) -> (x_train, y_train, x_test,
y_test)``: every random draw from ``generator`` (the fold's ``data`` stream), in float64 so that
float32 and float64 runs see the same examples; targets are ``(n, 1)`` floats in {0, 1} for a
binary task, ``(n,)`` int64 classes otherwise. Options are checked here, with a ValueError naming
the option (the job's check turns it into a configuration error before any training).
"""

from __future__ import annotations

import functools
import math

import torch

Draw = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _disk_points(n: int, gen: torch.Generator, radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand(n, 2, generator=gen, dtype=torch.float64)
    inside = (x - 0.5).square().sum(1) < radius**2
    return x, inside.to(torch.float64).unsqueeze(1)


def disk(n_train: int, n_test: int, gen: torch.Generator, radius: float) -> Draw:
    """The report's task: points uniform in [0, 1]², label 1 inside the disk of ``radius``
    centred at (0.5, 0.5) (1/√(2π): area 1/2, balanced classes). Training points, then test
    points, drawn fresh for each fold."""
    if not 0 < radius < math.sqrt(0.5):
        raise ValueError(
            f"radius must be in (0, 0.7071), got {radius!r}: at 1/sqrt(2) the disk covers the "
            "square and every label is 1"
        )
    return (*_disk_points(n_train, gen, radius), *_disk_points(n_test, gen, radius))


def _moon_points(n: int, gen: torch.Generator, noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    label = torch.randperm(n, generator=gen) < n // 2  # balanced: n // 2 of class 1, shuffled
    angle = torch.rand(n, generator=gen, dtype=torch.float64) * math.pi
    upper = torch.stack([angle.cos(), angle.sin()], dim=1)  # class 0
    lower = torch.stack([1 - angle.cos(), 0.5 - angle.sin()], dim=1)  # class 1
    x = torch.where(label.unsqueeze(1), lower, upper)
    x = x + noise * torch.randn(n, 2, generator=gen, dtype=torch.float64)
    return x, label.to(torch.float64).unsqueeze(1)


def moons(n_train: int, n_test: int, gen: torch.Generator, noise: float) -> Draw:
    """Two interleaved half-circles (scikit-learn's ``make_moons``, drawn at random): class 0 at
    (cos t, sin t), class 1 at (1 − cos t, ½ − sin t), t uniform in [0, π], then Gaussian noise
    of standard deviation ``noise`` on each coordinate; half the points of each class, in a
    random order. Training points, then test points, drawn fresh for each fold."""
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    return (*_moon_points(n_train, gen, noise), *_moon_points(n_test, gen, noise))


@functools.cache
def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    # Imported here: only the digits task needs scikit-learn. load_digits reads the copy that
    # ships inside the package (never a download, unlike sklearn's fetch_* functions).
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.as_tensor(digits.images, dtype=torch.float64) / 16.0  # pixel values 0..16
    return images.unsqueeze(1), torch.as_tensor(digits.target, dtype=torch.int64)


def digits(n_train: int, n_test: int, gen: torch.Generator) -> Draw:
    """scikit-learn's 1,797 bundled 8×8 handwritten digits in an order drawn from ``gen``, the
    first ``n_train`` to train, the next ``n_test`` to test: images ``(n, 1, 8, 8)`` scaled to
    [0, 1], labels ``(n,)`` int64 in 0..9."""
    images, labels = _digits()
    if n_train + n_test > len(labels):
        raise ValueError(f"n_train + n_test must be at most {len(labels)}")
    order = torch.randperm(len(labels), generator=gen)
    images, labels = images[order], labels[order]
    test = slice(n_train, n_train + n_test)
    return images[:n_train], labels[:n_train], images[test], labels[test]
