"""The report's data set and the generators of the equivalence protocol.

For base seed ``s`` and fold ``k`` three independent ``torch.Generator`` streams are derived:
``data`` (train and test points), ``init`` (initial weights) and ``shuffle`` (mini-batch order).
Seeds come from a SHA-256 of ``(s, k, stream)``, so they are the same in every process and on
every machine, and changing one stream (say, the mini-batch order) leaves the others alone.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Literal

import torch

from .config import DISK_RADIUS

Stream = Literal["data", "init", "shuffle"]


def derived_seed(seed: int, fold: int, stream: Stream) -> int:
    """A 63-bit seed for one stream of one fold, stable across processes and platforms."""
    digest = hashlib.sha256(f"ee559-bench:{seed}:{fold}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(seed: int, fold: int, stream: Stream) -> torch.Generator:
    """A CPU generator seeded for ``stream`` of fold ``fold`` (CPU so draws match everywhere)."""
    return torch.Generator().manual_seed(derived_seed(seed, fold, stream))


def disk_dataset(
    n: int,
    gen: torch.Generator,
    radius: float = DISK_RADIUS,
    center: tuple[float, float] = (0.5, 0.5),
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points uniform in [0, 1]², label 1 inside the disk: x ``(n, 2)``, y ``(n, 1)``.

    Drawn in float64 so that float32 and float64 runs see the same points and labels.
    """
    x = torch.rand(n, 2, generator=gen, dtype=torch.float64)
    inside = (x - torch.tensor(center, dtype=torch.float64)).square().sum(1) < radius**2
    return x, inside.to(torch.float64).unsqueeze(1)


@dataclass(frozen=True)
class Split:
    """One fold's training, validation and test tensors (the validation set may be empty)."""

    x_train: torch.Tensor  # (n_train - n_val, 2)
    y_train: torch.Tensor  # (n_train - n_val, 1)
    x_test: torch.Tensor  # (n_test, 2)
    y_test: torch.Tensor  # (n_test, 1)
    x_val: torch.Tensor  # (n_val, 2)
    y_val: torch.Tensor  # (n_val, 1)

    def to(self, device: torch.device | str, dtype: torch.dtype) -> Split:
        """On ``device``, floating tensors in ``dtype`` (class indices stay int64)."""
        return Split(
            *(
                t.to(device=device, dtype=dtype if t.is_floating_point() else None)
                for t in self.__dict__.values()
            )
        )


@functools.cache
def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    # Imported here: only the digits task needs scikit-learn. load_digits reads the copy that
    # ships inside the package (never a download, unlike sklearn's fetch_* functions).
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.as_tensor(digits.images, dtype=torch.float64) / 16.0  # pixel values 0..16
    return images.unsqueeze(1), torch.as_tensor(digits.target, dtype=torch.int64)


def digits_dataset(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 handwritten digits in an order drawn from ``gen``: images
    ``(1797, 1, 8, 8)`` scaled to [0, 1] (float64), labels ``(1797,)`` int64 in 0..9."""
    images, labels = _digits()
    order = torch.randperm(len(labels), generator=gen)
    return images[order], labels[order]


def fold_split(
    seed: int,
    fold: int,
    n_train: int = 1000,
    n_test: int = 1000,
    radius: float = DISK_RADIUS,
    n_val: int = 0,
    dataset: str = "disk",
) -> Split:
    """Train and test sets of one fold, both drawn from the fold's ``data`` stream (``disk``:
    fresh points; ``digits``: a random split of the 1,797 images); the last ``n_val`` of the
    ``n_train`` training points are held out as the validation set (so the points are the same
    whatever ``n_val``)."""
    gen = generator(seed, fold, "data")
    if dataset == "digits":
        images, labels = digits_dataset(gen)
        x, y = images[:n_train], labels[:n_train]
        x_test, y_test = images[n_train : n_train + n_test], labels[n_train : n_train + n_test]
    else:
        x, y = disk_dataset(n_train, gen, radius)
        x_test, y_test = disk_dataset(n_test, gen, radius)
    fit = n_train - n_val
    return Split(x[:fit], y[:fit], x_test, y_test, x[fit:], y[fit:])
