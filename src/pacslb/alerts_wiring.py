"""The composition root's part for alerts (appliance.py builds it): how the appliance's parts are heard by the alerts
service without importing it. It knows both sides, as the root does; no other part imports it.

    the change front door's audit   -> config-applied, config-refused (and the audit log, as before)
    the HA pair's VRRP record       -> ha-role-change, split-brain
    the live status, once a second  -> real servers and virtual services down/up, engine restarts (alerts/watch.py)
"""

from __future__ import annotations

import time
from typing import Any, Iterable

from .alerts import events
from .alerts.service import AlertService
from .alerts.watch import Look
from .change.audit import ChangeAudit
from .controller.status import ApplianceStatus
from .engines.contract import Engine

VRRP_STATES = ("MASTER", "BACKUP", "FAULT", "STOP")  # not UNKNOWN: keepalived's engine says that of a restart


class AlertWiring:
    def __init__(self, alerts: AlertService, audit: ChangeAudit) -> None:
        self.alerts = alerts
        self._audit = audit
        self._vrrp_state = "UNKNOWN"

    def audit(self, origin: Any, action: str, target: str, result: Any) -> None:
        """Every answer of the change front door (from a thread): into the audit log; applied or refused ones to alerts."""
        self._audit(origin, action, target, result)
        outcome = result.outcome.value
        if outcome == "applied":
            rev = result.revision.id if result.revision else None
            self.alerts.emit(events.config_applied(action, target, rev, origin.author, origin.via, result.message,
                                                   time.time()))  # fmt: skip
        elif outcome in ("invalid", "refused", "conflict"):
            problems = [str(p) for p in result.problems]
            self.alerts.emit(events.config_refused(action, target, origin.author, origin.via, result.message, problems,
                                                   time.time()))  # fmt: skip

    def ha_event(self, state: str, why: str) -> None:
        """A line of the HA pair's VRRP record: a role change or split brain."""
        if state == "SPLIT-BRAIN":
            self.alerts.emit(events.split_brain(why, time.time()))
        elif state in VRRP_STATES and state != self._vrrp_state:
            old, self._vrrp_state = self._vrrp_state, state
            self.alerts.emit(events.ha_role_change(old, state, why, time.time()))


def look(status: ApplianceStatus, engines: Iterable[Engine]) -> Look:
    """What alerts compare once a second: each real server's state with its check's words, each virtual service's
    state, each engine's restarts (`engines` are asked; the status is given)."""
    servers, services = {}, {}
    for vs in status.virtual_services:
        services[vs.name] = vs.state.value
        for rs in vs.real_servers:
            summary = rs.check.summary()
            reason = summary.removeprefix("failed: ") if summary not in ("-", "pending") else ""
            servers[(vs.name, rs.name)] = (rs.state.value, reason)
    restarts = {}
    for engine in engines:
        state = engine.observe()
        restarts[engine.name] = (state.restarts, state.error)
    return Look(servers, services, restarts)
