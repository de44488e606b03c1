"""The rendered text of each virtual service's sections, reused by the next render while its input is the same.

A whole-file apply at 1,000 services x 10 real servers used to transform and lay out every frontend and
backend again (about 200 ms of Python) although one real server changed. A service's sections depend on:

  - the service itself (its JSON; secrets as their marks, model/types.py MARK, so a changed password is a
    changed service, and no value is kept here);
  - the services whose rules or default reach it (a backend-only service takes its mode, listener ports and
    check host from them: render.py `_reached_from`), by their JSON too;
  - the context: HAProxyEnv and everything of the configuration but its services (settings, resolvers, the HA
    pair, the cluster: the timeouts, retries, log settings and agent port every section reads), as JSON.

A render (render.py `render` with a cache) looks each service up by the first two, within its context: a
render in another context (any setting changed) starts from an empty cache. The WAF tier mixes sections of
several services (its ports are numbered across them): a configuration with a WAF policy is rendered whole
and leaves the cache as it is.

What is kept is the texts of the last render only (so a service removed or changed leaves nothing behind),
at most `limit` services of it: the memory is one rendered file at most. Renders may run in two threads at
once (a change's plan, the background write of haproxy.cfg): each works on its own copy; the last one kept.
"""

from __future__ import annotations

import threading
from typing import Hashable

from ...model.limits import MAX_VIRTUAL_SERVICES

DEFAULT_LIMIT = MAX_VIRTUAL_SERVICES  # a whole configuration of the largest size the model takes

Key = tuple[str, tuple[str, ...]]  # (the service's JSON, the JSON of the services that reach it)


class SectionCache:
    """The section texts of the services of the last render, by their input (see the module's docstring)."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 0:
            raise ValueError(f"limit must be 0 or more (services kept), not {limit}")
        self.limit = limit
        self._lock = threading.Lock()
        self._context: Hashable | None = None
        self._texts: dict[Key, tuple[str, ...]] = {}
        self.hits = 0  # of the last render: for the tests and the bench
        self.misses = 0

    def __len__(self) -> int:
        return len(self._texts)

    def begin(self, context: Hashable) -> dict[Key, tuple[str, ...]]:
        """The texts a render in `context` may reuse: those of the last render when it had the same context."""
        with self._lock:
            return self._texts if self._context == context else {}

    def end(self, context: Hashable, used: dict[Key, tuple[str, ...]], hits: int, misses: int) -> None:
        """Keep the texts of the render that just ended (`used`: at most `limit` of its services)."""
        with self._lock:
            self._context, self._texts = context, used
            self.hits, self.misses = hits, misses

    def clear(self) -> None:
        """Forget every text (their memory)."""
        with self._lock:
            self._context, self._texts = None, {}
