"""Which check worker runs which watch: pure functions of the watch keys and the number of workers.

The assignment is rendezvous hashing (highest random weight): each watch key scores every worker
index with a hash of (index, key), and goes to the highest score. So:
  - a watch's worker depends on its key and the number of workers only: the same on every start, and a
    change of the configuration that adds or removes real servers moves no other watch;
  - from N to N+1 workers only the watches the new worker wins move (about 1 in N+1), from N+1 to N
    only those of the worker that goes; a plain `hash mod N` would move most of them.
A watch that moves starts again on its new worker (undecided until `rise` passes or `fall` failures), so
fewer moves means fewer real servers about which HAProxy is told nothing for a while.
"""

from __future__ import annotations

import hashlib
import os
from typing import Iterable, Literal, TypeVar

Key = tuple[str, str]
T = TypeVar("T")


# 'auto' runs the checks in the controller itself below this many checks a second: a third of what one process
# sustained of the costliest kind (dicom-echo, about 1,500/s: bench/README.md, "Health checks"). Workers cost
# about 50 MB each; an appliance with a few hundred real servers checked every few seconds does not need them.
AUTO_WORKERS_FROM_RATE = 500.0


def worker_count(setting: int | Literal["auto"], cpus: int | None = None, rate: float | None = None) -> int:
    """The number of check workers of `settings.health.workers`: 'auto' is 1 (in the controller) while the
    appliance's checks come to under AUTO_WORKERS_FROM_RATE a second (`rate`, when given), else the CPUs this
    process may use (its affinity mask: a controller pinned to one core gets one worker), at least 1."""
    if setting != "auto":
        return max(1, int(setting))
    if rate is not None and rate < AUTO_WORKERS_FROM_RATE:
        return 1
    if cpus is None:
        try:
            cpus = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cpus = os.cpu_count() or 1
    return max(1, cpus)


def _score(index: int, key: Key) -> int:
    # blake2b, not hash(): Python salts str hashes per process, and the assignment must not change on a restart
    data = f"{index}\x00{key[0]}\x00{key[1]}".encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def shard_of(key: Key, workers: int) -> int:
    """The worker index (0 .. workers-1) that runs the watch `key`."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    if workers == 1:
        return 0
    return max(range(workers), key=lambda index: _score(index, key))


def assign(items: Iterable[T], workers: int, key=lambda item: item.key) -> list[list[T]]:
    """`items` (watches, by default keyed by `.key`) split into `workers` shards, each in the given order."""
    shards: list[list[T]] = [[] for _ in range(workers)]
    for item in items:
        shards[shard_of(key(item), workers)].append(item)
    return shards
