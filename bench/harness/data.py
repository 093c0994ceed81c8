"""The generators of the equivalence protocol, and one fold's data.

For base seed ``s`` and fold ``k`` three independent ``torch.Generator`` streams are derived:
``data`` (train and test points), ``init`` (initial weights) and ``shuffle`` (mini-batch order).
Seeds come from a SHA-256 of ``(s, k, stream)``, so they are the same in every process and on
every machine, and changing one stream (say, the mini-batch order) leaves the others alone.
The datasets themselves are in ``bench.harness.datasets``, one function each.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

import torch

from .spec import DataSpec

Stream = Literal["data", "init", "shuffle"]
STREAMS: tuple[Stream, ...] = ("data", "init", "shuffle")


def derived_seed(seed: int, fold: int, stream: Stream) -> int:
    """A 63-bit seed for one stream of one fold, stable across processes and platforms."""
    digest = hashlib.sha256(f"ee559-bench:{seed}:{fold}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(seed: int, fold: int, stream: Stream) -> torch.Generator:
    """A CPU generator seeded for ``stream`` of fold ``fold`` (CPU so draws match everywhere)."""
    return torch.Generator().manual_seed(derived_seed(seed, fold, stream))


def crossed_levels(folds: int) -> int:
    """The levels per stream L of a crossed design of ``folds`` = L³ folds (ValueError unless
    ``folds`` is the cube of an L >= 2)."""
    levels = round(folds ** (1 / 3))
    if levels < 2 or levels**3 != folds:
        raise ValueError(f"vary=crossed needs folds = L**3 with L >= 2 (8, 27, 64, ...): {folds}")
    return levels


#: the stride of each stream's draw in a crossed design's fold index, in units of L^power
_CROSSED_POWER: dict[Stream, int] = {"data": 2, "init": 1, "shuffle": 0}


def stream_fold(vary: str, fold: int, stream: Stream, folds: int) -> int:
    """The draw (the fold index its generator derives from) that ``stream`` uses in fold ``fold``
    of a job of ``folds`` folds:

    - ``vary=all``: the fold's own draw of every stream;
    - ``vary=data|init|shuffle``: the fold's own draw of that stream, fold 0's of the two others;
    - ``vary=crossed`` (``folds`` = L³): every combination of L draws of each stream once, fold
      k using data draw k // L², init draw (k // L) % L, shuffle draw k % L (so draws 0..L-1 of
      each stream are the first L draws of ``vary=all``)."""
    if vary == "crossed":
        levels = crossed_levels(folds)
        return fold // levels ** _CROSSED_POWER[stream] % levels
    return fold if vary in ("all", stream) else 0


@dataclass(frozen=True)
class Split:
    """One fold's training, validation and test tensors (the validation set may be empty)."""

    x_train: torch.Tensor  # (n_train - n_val, *shape)
    y_train: torch.Tensor  # (n_train - n_val, 1) for a binary task, (n_train - n_val,) classes
    x_test: torch.Tensor  # (n_test, *shape)
    y_test: torch.Tensor
    x_val: torch.Tensor  # (n_val, *shape)
    y_val: torch.Tensor

    def to(self, device: torch.device | str, dtype: torch.dtype) -> Split:
        """On ``device``, floating tensors in ``dtype`` (class indices stay int64)."""
        return Split(
            *(
                t.to(device=device, dtype=dtype if t.is_floating_point() else None)
                for t in self.__dict__.values()
            )
        )


def fold_split(data: DataSpec, seed: int, fold: int) -> Split:
    """Train and test sets of one fold, drawn from the fold's ``data`` stream by the dataset's
    function; the last ``n_val`` of the ``n_train`` training points are held out as the
    validation set (so the points are the same whatever ``n_val``)."""
    draw = data.dataset.entry.load()
    x, y, x_test, y_test = draw(
        data.n_train, data.n_test, generator(seed, fold, "data"), **data.dataset.kwargs()
    )
    fit = data.n_train - data.n_val
    return Split(x[:fit], y[:fit], x_test, y_test, x[fit:], y[fit:])
