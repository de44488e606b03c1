"""The order of interleaved measurements: every round runs every case once, rotated by one from round to round."""

from __future__ import annotations

from typing import Iterator, Sequence, TypeVar

T = TypeVar("T")


def rotated(items: Sequence[T], rnd: int) -> list[T]:
    """The order of round `rnd`: a b c d, then b c d a, then c d a b, ..."""
    items = list(items)
    k = rnd % len(items)
    return items[k:] + items[:k]


def schedule(items: Sequence[T], rounds: int) -> Iterator[tuple[int, int, T]]:
    """(round, position in the round, item) for every measurement of `rounds` rounds."""
    for rnd in range(rounds):
        for pos, item in enumerate(rotated(items, rnd)):
            yield rnd, pos, item
