"""Virtual services validated before, reused while their data is the same: a whole-file apply validates what changed.

pydantic took about 200 ms to validate 1,000 services of 10 real servers each, on every apply, although a
change touches a service or two. `ValidatedServices.validate(data)` is `Config.model_validate(data)`, except
that each item of `virtual_services` whose data is exactly the data of a service it validated last time is
given to pydantic as that `VirtualService` (pydantic takes a model instance as it is: no validation, the same
object). A service's validation reads nothing but its own data (no validator of `Config` looks across
services; model/checks.py does, on the whole result, every time), so the result is the same model, and the
problems of an invalid configuration are the same (a reused service is one that was valid).

"The same data" is the same `repr`: Python's literal of plain data tells a str from a number, 1 from 1.0 and
True, and keeps the order of keys (another order is another key: validated again, nothing worse); it is hashed
(BLAKE2b, 32 bytes), so that the keys are small. Keys are made only after model/limits.py passed the data
(no alias bomb, no loop, bounded depth), for mappings only.

A runtime change and the revision's JSON reuse services by object identity already (change/service.py
`with_real_servers`, change/revision_json.py); a service reused here is the running one's object when its
data did not change, so that the render (engines/haproxy/section_cache.py), the plan's diff and the revision's
JSON find it unchanged at once.

What is kept is the services of the last validation that succeeded, at most `limit` of them: their models,
which the running configuration shares when it was applied (the keys are 32 bytes each).
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

from .config import Config, VirtualService
from .limits import MAX_VIRTUAL_SERVICES

DEFAULT_LIMIT = MAX_VIRTUAL_SERVICES  # every service of the largest configuration the model takes


def service_key(item: Any) -> bytes | None:
    """The key of one item of `virtual_services` (plain data): the hash of its repr; None for what is no mapping."""
    if not isinstance(item, dict):
        return None
    return hashlib.blake2b(repr(item).encode("utf-8", "surrogatepass"), digest_size=32).digest()


class ValidatedServices:
    """The services of the last configuration validated, by the key of their data (see the module's docstring)."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 0:
            raise ValueError(f"limit must be 0 or more (services kept), not {limit}")
        self.limit = limit
        self._lock = threading.Lock()
        self._services: dict[bytes, VirtualService] = {}
        self.reused = 0  # services of the last validation taken as they were: for the tests and the bench

    def __len__(self) -> int:
        return len(self._services)

    def validate(self, data: dict[str, Any]) -> Config:
        """`Config.model_validate(data)`, reusing the services validated last time; raises ValidationError as it does."""
        items = data.get("virtual_services")
        if not isinstance(items, list) or not self.limit:
            return Config.model_validate(data)
        keys = [service_key(item) for item in items]
        with self._lock:
            known = self._services
        given = [known.get(key, item) if key is not None else item for key, item in zip(keys, items, strict=True)]
        config = Config.model_validate({**data, "virtual_services": given})
        kept: dict[bytes, VirtualService] = {}
        for key, vs in zip(keys, config.virtual_services, strict=True):
            if key is not None and len(kept) < self.limit:
                kept[key] = vs
        with self._lock:
            self._services = kept
            self.reused = sum(1 for item in given if isinstance(item, VirtualService))
        return config

    def clear(self) -> None:
        """Forget every service (their memory)."""
        with self._lock:
            self._services = {}
