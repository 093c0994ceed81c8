"""Pairing of interleaved benchmark rounds: which rounds form a block, and the other
contender's block that ran just before it (used by conftest's ``interleaved``)."""

from __future__ import annotations

import statistics


def paired_blocks(durations: list[float], before: list[float | None]) -> list[list[float]]:
    """``[median round of a block, the other's median step in the block just before it]`` for
    every block of rounds that an other's block preceded (round i was preceded by ``before[i]``;
    rounds before the first such block are dropped: nothing ran beside them). Medians, so that
    the first step after a switch, which finds its caches taken by the other contender, does not
    weigh on its block."""
    blocks: list[tuple[list[float], float]] = []
    for duration, other in zip(durations, before, strict=True):
        if other is not None:
            blocks.append(([], other))
        if blocks:
            blocks[-1][0].append(duration)
    return [[statistics.median(rounds), other] for rounds, other in blocks]
