"""The controller's malloc arenas: how much memory freed objects keep resident.

glibc gives each thread that allocates under contention an arena of its own (up to 8 per core), and an
arena keeps what was freed in it. The controller's worker threads (asyncio.to_thread: validation, the
revision store, the metrics sampler, the background write of haproxy.cfg) each build and drop
megabytes at 1,000 services, so its resident size at rest grew with the number of threads that ever ran
a large change. Two arenas kept it nearer what is live: measured at 1,000 services x 10 real servers
(bench/README.md, "The controller's performance"), 184 -> 149 MB at rest and 210 -> 170 MB at the peak,
with runtime changes no slower. One arena keeps it nearer still: 148-154 -> 138-140 MB at rest and 171-175
-> 157-160 MB at the peak, applies no slower (bench/README.md, "Memory, this round"). The worker threads
allocate under the GIL almost always, so they seldom wait for the one arena's lock.
"""

from __future__ import annotations

import ctypes

M_ARENA_MAX = -8  # mallopt(3)
ARENAS = 1


def limit_arenas(count: int = ARENAS) -> bool:
    """At most `count` malloc arenas for this process (call it before threads start); False when not glibc.
    MALLOC_ARENA_MAX in the environment, when set, is the operator's choice and is kept."""
    import os

    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, count))
    except (OSError, AttributeError):
        return False
