"""A configuration's JSON for its revision, without dumping the services that did not change.

`Config.model_dump_json()` of 1,000 services with 10 real servers each takes tens of milliseconds of
Python (enum values are read one by one), and the event loop waits for it on every runtime change. A
change never edits a model in place: it copies the services it changes and shares the others
(change/service.py `with_real_servers`), so the dump of a service that is the very same object as in the
last dump is the same text. `RevisionJson.dump` returns exactly `config.model_dump_json()`; the unit tests
compare the two on the True PACS template and on generated configurations.
"""

from __future__ import annotations

from ..model import Config
from ..model.config import VirtualService
from ..store.revision_delta import Parts

_MARK = '"virtual_services":[]'


class RevisionJson:
    """The dumps of the services of the last configuration dumped, by object identity."""

    def __init__(self) -> None:
        self._services: dict[int, tuple[VirtualService, str]] = {}  # id -> (the service, kept alive; its JSON)

    def dump(self, config: Config) -> str:
        """`config.model_dump_json()`, reusing the JSON of every service dumped last time."""
        parts = self.dump_parts(config)
        return parts.text() if isinstance(parts, Parts) else parts

    def dump_parts(self, config: Config) -> Parts | str:
        """`config.model_dump_json()` cut at its services (store/revision_delta.py), the services dumped last
        time reused; the whole text when it cannot be cut with certainty (a key of that name elsewhere)."""
        head = config.model_copy(update={"virtual_services": []}).model_dump_json()
        if head.count(_MARK) != 1:  # a key of that name elsewhere: no splicing, the whole dump
            self._services = {}
            return config.model_dump_json()
        kept: dict[int, tuple[VirtualService, str]] = {}
        parts = []
        for vs in config.virtual_services:
            hit = self._services.get(id(vs))
            text = hit[1] if hit is not None and hit[0] is vs else vs.model_dump_json()
            kept[id(vs)] = (vs, text)
            parts.append(text)
        self._services = kept
        at = head.index(_MARK) + len(_MARK) - 1  # the "]" of the empty list
        return Parts(head[:at], tuple(parts), head[at:])

    def forget(self) -> None:
        """Drop the cached dumps (their memory)."""
        self._services = {}
