"""Clearing a virtual service's persistence table (issue 15): the one path of the CLI, the API and the WebUI.

Source-IP, SSL-session-ID, X-Forwarded-For and application-cookie persistence keep each client's real server
in a HAProxy stick table named after the service (engines/haproxy/backend.py). Clearing it sends every client
to the scheduler again at its next connection: what an administrator does after moving real servers, or when
one real server has gathered the clients of a busy morning. It changes no configuration and no revision (the
table is state, not configuration); it is recorded in the audit log as `persistence.clear`, refusals too.

In an HA pair the peer keeps its own copy of the table (HAProxy's peers replicate entries, not their
deletion): clear it on both nodes. Entries that an open connection still uses stay until it closes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .engines.haproxy.runtime import RuntimeAPI, RuntimeAPIError
from .engines.haproxy.stick_tables import clear_table
from .model.config import Config, Mode
from .store.audit import AuditLog

ACTION = "persistence.clear"
TABLE_TYPES = ("source-ip", "ssl-session-id", "x-forwarded-for", "app-cookie")


class ClearRefused(Exception):
    """Nothing was cleared: `status` is the HTTP answer (404 no such service, 409 no table, 503 HAProxy down)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Cleared:
    service: str
    table: str
    cleared: int  # entries removed
    remaining: int  # entries an open connection still used

    @property
    def message(self) -> str:
        text = (
            f"cleared the persistence table of {self.service}: {self.cleared} entr{'y' if self.cleared == 1 else 'ies'} removed"
        )
        if self.remaining:
            text += f", {self.remaining} kept while an open connection uses them"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {"service": self.service, "table": self.table, "cleared": self.cleared, "remaining": self.remaining,
                "message": self.message}  # fmt: skip


def persistence_table(config: Config | None, service: str) -> str:
    """The stick table that holds `service`'s persistence; ClearRefused saying why there is none."""
    vs = config.service(service) if config is not None else None
    if vs is None:
        raise ClearRefused(404, f"no virtual service is called {service!r}")
    kind = vs.persistence.type
    if kind == "none":
        raise ClearRefused(409, f"virtual service {service!r} has no persistence (persistence.type none): nothing to clear")
    if kind == "http-cookie":
        raise ClearRefused(409, f"virtual service {service!r} keeps persistence in a cookie the clients hold, not in a "
                                "table on the appliance: nothing to clear here")  # fmt: skip
    if vs.mode not in (Mode.LAYER7_HTTP, Mode.LAYER7_TCP, Mode.BACKEND_ONLY):
        raise ClearRefused(409, f"virtual service {service!r} is {vs.mode.value}: only Layer 7 persistence tables can be "
                                "cleared (Layer 4 entries expire after persistence.timeout)")  # fmt: skip
    if not vs.real_servers:
        raise ClearRefused(409, f"virtual service {service!r} has no real servers of its own, so no persistence table: "
                                "clear the backend-only services its rules use")  # fmt: skip
    assert kind in TABLE_TYPES, kind
    return vs.name


def clear_persistence(config: Config | None, admin_socket: Path, service: str, audit_log: Path, *, username: str,
                      via: str, client_ip: str | None = None) -> Cleared:  # fmt: skip
    """Clear `service`'s persistence table through HAProxy's runtime API and record it (or the refusal) in the
    audit log. Raises ClearRefused when nothing was cleared. Blocking: call it from a thread in asyncio code."""

    def audit(outcome: str, detail: dict[str, Any]) -> None:
        AuditLog(audit_log).record(username, ACTION, target=service, outcome=outcome, client_ip=client_ip, via=via,
                                   detail=detail)  # fmt: skip

    try:
        table = persistence_table(config, service)
        try:
            before, after = clear_table(RuntimeAPI(admin_socket), table)
        except RuntimeAPIError as exc:
            raise ClearRefused(503, f"HAProxy did not clear {table!r}: {exc}") from None
    except ClearRefused as refused:
        audit({404: "not-found", 409: "refused"}.get(refused.status, "failed"), {"message": refused.message})
        raise
    cleared = Cleared(service, table, max(before.used - after.used, 0), after.used)
    audit("ok", cleared.as_dict())
    return cleared
