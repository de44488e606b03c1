"""Alerts as values: what happened, how severe, to what, in one line a person reads.

Each event of docs/alerts.md has one constructor here, so that its severity and wording are said once.
Pure: no clock (the caller gives `at`), no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class Alert:
    """One alert. `subject` is what it is about ('WFC_443/rs1', 'haproxy', a certificate's path); `flap_key`,
    when set, groups it with the other changes of the same thing (flap.py)."""

    event: str
    severity: str
    subject: str
    message: str
    at: float
    details: dict[str, Any] = field(default_factory=dict)
    flap_key: str | None = None

    def __post_init__(self) -> None:
        if self.severity not in SEVERITY_RANK:
            raise ValueError(f"unknown severity {self.severity!r}")

    def as_json(self, node: str) -> dict[str, Any]:
        """The alert as the webhook's JSON body (and the API) shows it."""
        return {"event": self.event, "severity": self.severity, "subject": self.subject, "message": self.message,
                "at": self.at, "node": node, "details": dict(self.details)}  # fmt: skip


def real_server_down(service: str, server: str, reason: str, at: float) -> Alert:
    why = reason or "check failed"
    return Alert("real-server-down", "critical", f"{service}/{server}",
                 f"real server {server} of {service} is DOWN: {why}", at,
                 {"service": service, "server": server, "reason": why}, flap_key=f"{service}/{server}")  # fmt: skip


def real_server_up(service: str, server: str, reason: str, at: float) -> Alert:
    detail = f" ({reason})" if reason else ""
    return Alert("real-server-up", "info", f"{service}/{server}", f"real server {server} of {service} is UP again{detail}",
                 at, {"service": service, "server": server, "reason": reason}, flap_key=f"{service}/{server}")  # fmt: skip


def virtual_service_down(service: str, at: float) -> Alert:
    return Alert("virtual-service-down", "critical", service,
                 f"virtual service {service} is DOWN: none of its real servers (nor a fallback) can serve", at,
                 {"service": service}, flap_key=service)  # fmt: skip


def virtual_service_up(service: str, at: float) -> Alert:
    return Alert("virtual-service-up", "info", service, f"virtual service {service} is UP again", at,
                 {"service": service}, flap_key=service)  # fmt: skip


def ha_role_change(old: str, new: str, reason: str, at: float) -> Alert:
    # FAULT, STOP: this node cannot take over; the first state after a start (from UNKNOWN) is news, not trouble
    severity = "critical" if new not in ("MASTER", "BACKUP") else "info" if old == "UNKNOWN" else "warning"
    return Alert("ha-role-change", severity, "vrrp", f"HA: this node went from {old} to {new} ({reason})", at,
                 {"from": old, "to": new, "reason": reason})  # fmt: skip


def split_brain(reason: str, at: float) -> Alert:
    return Alert("split-brain", "critical", "vrrp", f"HA split brain: {reason}", at, {"reason": reason})


def config_applied(action: str, target: str, revision: int | None, author: str, via: str, message: str, at: float) -> Alert:
    rev = f"revision {revision}" if revision is not None else "the configuration"
    how = message.removeprefix(f"{rev} applied: ")  # the front door's answer names the revision already
    return Alert("config-applied", "info", target or "configuration", f"{rev} applied by {author} via {via}: {how}", at,
                 {"action": action, "target": target, "revision": revision, "author": author, "via": via})  # fmt: skip


def config_refused(action: str, target: str, author: str, via: str, message: str, problems: list[str], at: float) -> Alert:
    first = f"; {problems[0]}" if problems else ""
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return Alert("config-refused", "warning", target or "configuration",
                 f"a change by {author} via {via} was refused: {message}{first}{more}", at,
                 {"action": action, "target": target, "author": author, "via": via, "problems": problems[:20]})  # fmt: skip


def certificate_expiring(label: str, path: str, not_after: float, days_left: int, at: float) -> Alert:
    severity = "critical" if days_left <= 7 else "warning"
    when = "has expired" if days_left < 0 else f"expires in {days_left} day{'s' if days_left != 1 else ''}"
    return Alert("certificate-expiring", severity, path, f"certificate {path} ({label}) {when}", at,
                 {"label": label, "path": path, "not_after": not_after, "days_left": days_left})  # fmt: skip


def engine_restarted(engine: str, restarts: int, error: str | None, at: float) -> Alert:
    why = f": {error}" if error else ""
    return Alert("engine-restarted", "warning", engine,
                 f"the supervisor restarted {engine} (restart {restarts} since the controller started){why}", at,
                 {"engine": engine, "restarts": restarts, "error": error})  # fmt: skip


def test_alert(receiver: str, at: float) -> Alert:
    return Alert("test", "info", receiver, f"test alert from pacslb to receiver {receiver}: if you read this, alerts reach you",
                 at, {"receiver": receiver})  # fmt: skip


def flap_summary(first: Alert, last: Alert, changes: int, interval_s: float, at: float) -> Alert:
    """The summary of `changes` more changes of one thing within one flap interval, `last` the latest."""
    minutes = f"{interval_s / 60:g}m" if interval_s >= 60 else f"{interval_s:g}s"
    severity = max(first.severity, last.severity, key=SEVERITY_RANK.__getitem__)
    return Alert(last.event, severity, last.subject,
                 f"flapping: {last.subject} changed state {changes} more time{'s' if changes != 1 else ''} in {minutes}; "
                 f"now: {last.message}", at, {**last.details, "flapping": True, "changes": changes}, flap_key=None)  # fmt: skip
