"""Parts of the appliance that run beside HAProxy inside the controller: one list, one small surface.

Each subsystem (the health-check service, the management API and WebUI, the HA pair) is a class with

    name: str
    async def start(self, config: Config) -> None      # after HAProxy and Layer 4 are up
    async def applied(self, config: Config) -> None    # after every configuration that was applied
    async def stop(self) -> None                       # before HAProxy stops; must not raise

and is built by a factory `factory(controller) -> Subsystem | None` (None: not wanted, e.g. not
configured). `build` builds them in the order of FACTORIES; they start in that order and stop in
the reverse one. A subsystem that fails to start stops the appliance with a clear message
(raise SubsystemError); one that fails in `applied` is logged and the change stands.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Callable, Protocol

from ..model import Config

if TYPE_CHECKING:
    from .appliance import Controller

log = logging.getLogger("pacslb.controller")


class SubsystemError(Exception):
    """A subsystem cannot start; the message says what to fix."""


class Subsystem(Protocol):
    name: str

    async def start(self, config: Config) -> None: ...

    async def applied(self, config: Config) -> None: ...

    async def stop(self) -> None: ...


Factory = Callable[["Controller"], "Subsystem | None"]

# "module:function", imported when the controller starts (so `pacslb validate` never loads them).
# Order matters: health checks first (others report their results), then HA, then the management API.
FACTORIES: list[str] = [
    "pacslb.health.service:factory",  # health checks the appliance runs itself (dicom-echo, hl7, amqp, external)
    "pacslb.controller.ha:factory",  # the HA pair: keepalived, peer link and configuration sync (when `ha` is set)
    "pacslb.web.history:factory",  # metrics history for the WebUI's graphs (HAProxy's stats every 10 s, SQLite)
    "pacslb.api.server:factory",  # the management API and WebUI over HTTPS (last: it serves what the others report)
]


def build(controller: "Controller", factories: list[str] | None = None) -> list[Subsystem]:
    """The subsystems this controller runs, in start order."""
    built: list[Subsystem] = []
    for spec in FACTORIES if factories is None else factories:
        module, _, function = spec.partition(":")
        factory: Factory = getattr(importlib.import_module(module), function)
        subsystem = factory(controller)
        if subsystem is not None:
            built.append(subsystem)
    return built
