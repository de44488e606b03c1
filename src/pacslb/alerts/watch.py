"""What changed between two looks at the appliance, pure: real servers and virtual services down or up, and
engines the supervisor restarted. The composition root takes the looks (from the status it serves) and hands
them here as plain data, so that this package knows neither the controller nor the engines.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import events
from .events import Alert

DOWN, UP = "DOWN", "UP"


@dataclass(frozen=True)
class Look:
    """One look: each real server's state ('UP', 'DOWN' or another word, which counts as neither) with the last
    check's words, each virtual service's state, and each engine's restart count."""

    servers: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    services: dict[str, str] = field(default_factory=dict)
    restarts: dict[str, tuple[int, str | None]] = field(default_factory=dict)


def changes(before: Look | None, after: Look, at: float) -> list[Alert]:
    """The alerts between two looks. The first look (before None) raises nothing: what was down before the
    controller started is shown by status, and an alert for each at every restart would teach people to ignore them.
    A thing that appears (a new real server) raises nothing until it changes; only UP <-> DOWN counts (drain, halt
    and unknown are an operator's doing or a pause in observing)."""
    if before is None:
        return []
    found: list[Alert] = []
    for (service, server), (state, reason) in after.servers.items():
        old = before.servers.get((service, server))
        if old is None or old[0] == state:
            continue
        if state == DOWN and old[0] == UP:
            found.append(events.real_server_down(service, server, reason, at))
        elif state == UP and old[0] == DOWN:
            found.append(events.real_server_up(service, server, reason, at))
    for service, state in after.services.items():
        old_state = before.services.get(service)
        if state == DOWN and old_state == UP:
            found.append(events.virtual_service_down(service, at))
        elif state == UP and old_state == DOWN:
            found.append(events.virtual_service_up(service, at))
    for engine, (count, error) in after.restarts.items():
        old_count = before.restarts.get(engine, (count, None))[0]
        if count > old_count:
            found.append(events.engine_restarted(engine, count, error, at))
    return found
