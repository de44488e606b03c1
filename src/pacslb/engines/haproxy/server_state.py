"""Real-server states across reloads: the server-state file, and the drift between the model and what runs.

HAProxy reads `server-state-file` when a worker starts (`load-server-state-from-file global`) and
restores from it each server's admin state (maint, drain), weight and health. Written raw from
`show servers state`, it would also bring back states the model no longer has: a server halted at
runtime would stay in maintenance after an apply that set it online, since HAProxy keeps a forced
maintenance the configuration does not contradict. So the controller writes the file itself:
`rewrite` keeps what only HAProxy knows (health, check results, time of the last change) and sets
what the model says (admin state, weight). Lines of servers whose address or port changed, or that
leave maintenance, are dropped: those servers start as the configuration file says.

Drain is `weight 0` in the configuration file (it has no drain keyword) and the `drain` admin state at
runtime, with the configured weight kept: `show stat` reports DRAIN either way, and online restores
the configured weight. `drift` compares `show servers state` with the model and returns the runtime
commands that make them agree, and the servers that only a reload can add or remove.

Pure functions, no I/O; HAProxy's words (backend, server) stay in this package.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Literal, Mapping

from ...model.config import Config, RealServerState
from .runtime import AdminFlag, ServerStateRow

AdminState = Literal["ready", "drain", "maint"]

FALLBACK_SERVER = "fallback"  # the renderer's name for a service's fallback server (not a real server)

ADMIN_OF = {RealServerState.ONLINE: "ready", RealServerState.DRAIN: "drain", RealServerState.HALT: "maint"}


@dataclass(frozen=True)
class DesiredServer:
    """One server as the model wants it to run."""

    admin: AdminState
    weight: int  # the weight that runs (the configured one, kept while drained)
    initial_weight: int  # the weight the configuration file gives it (0 when drained)
    address: str | None  # an IP address; None for a DNS name, which HAProxy resolves
    port: int | None


ServerKey = tuple[str, str]  # (backend, server)


def _ip(address: str) -> str | None:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def desired_servers(config: Config) -> dict[ServerKey, DesiredServer]:
    """Every real server that HAProxy carries (Layer 7 and backend-only services), by (backend, server)."""
    found: dict[ServerKey, DesiredServer] = {}
    for vs in config.virtual_services:
        if vs.mode.is_layer4:
            continue
        for rs in vs.real_servers:
            found[(vs.name, rs.name)] = DesiredServer(
                admin=ADMIN_OF[rs.state],  # type: ignore[arg-type]
                weight=rs.weight,
                initial_weight=0 if rs.state is RealServerState.DRAIN else rs.weight,
                address=_ip(rs.address),
                port=rs.port,
            )
    return found


# --- the server-state file ----------------------------------------------------------------------

_FORCED = AdminFlag.FORCED_MAINT | AdminFlag.FORCED_DRAIN | AdminFlag.CONFIG_MAINT
_CHECK_CONFIGURED = 0x2  # HAProxy's CHK_ST_CONFIGURED in srv_check_state / srv_agent_state


def _forget_unconfigured_agent(values: list[str], column: Mapping[str, int]) -> None:
    """A server without an agent check is dumped with an agent port all the same (a `port` on the server or its
    default-server sets it), and a worker loading that port warns "server-state partially applied ... agent
    checks are not enabled on this server" for every such server at every reload: the port is dropped here."""
    try:
        agent_state = int(values[column["srv_agent_state"]])
    except (KeyError, ValueError):
        return
    if agent_state & _CHECK_CONFIGURED:
        return
    if "srv_agent_port" in column:
        values[column["srv_agent_port"]] = "0"
    if "srv_agent_addr" in column:
        values[column["srv_agent_addr"]] = "-"


def _admin_bits(admin: AdminState) -> int:
    if admin == "maint":
        # as HAProxy itself records a server that the configuration file says is `disabled`
        return AdminFlag.FORCED_MAINT | AdminFlag.CONFIG_MAINT
    if admin == "drain":
        return AdminFlag.FORCED_DRAIN
    return 0


def rewrite(text: str, desired: Mapping[ServerKey, DesiredServer]) -> str:
    """`show servers state` output (format 1) made to agree with the model, for the next worker to load.

    Unknown lines (other format versions, servers the model does not manage) are kept as they are.
    """
    lines = text.splitlines()
    if not lines or lines[0].strip() != "1":
        return "1\n"  # not format 1: start clean rather than feed HAProxy something it may misread
    header: list[str] = []
    out = [lines[0].strip()]
    for line in lines[1:]:
        if not line.strip():
            continue
        if line.startswith("#"):
            header = line.lstrip("#").split()
            out.append(line)
            continue
        values = line.split()
        if not header or len(values) < len(header):
            continue
        column = {name: i for i, name in enumerate(header)}
        try:
            key = (values[column["be_name"]], values[column["srv_name"]])
            flags = int(values[column["srv_admin_state"]])
        except (KeyError, ValueError):
            continue
        _forget_unconfigured_agent(values, column)
        want = desired.get(key)
        if want is None:
            out.append(" ".join(values))
            continue
        was_maint = bool(flags & (AdminFlag.FORCED_MAINT | AdminFlag.CONFIG_MAINT))
        if was_maint and want.admin != "maint":
            continue  # leaves maintenance: it starts as the configuration says (and is checked afresh)
        if want.address is not None and values[column["srv_addr"]] != want.address:
            continue
        if "srv_port" in column and values[column["srv_port"]] != str(want.port or 0):
            continue
        values[column["srv_admin_state"]] = str((flags & ~_FORCED) | _admin_bits(want.admin))
        values[column["srv_uweight"]] = str(want.weight)
        values[column["srv_iweight"]] = str(want.initial_weight)
        out.append(" ".join(values))
    return "\n".join(out) + "\n"


# --- drift between what runs and the model -------------------------------------------------------


@dataclass
class Drift:
    """What differs between `show servers state` and the model."""

    commands: list[str] = field(default_factory=list)  # runtime API commands that make them agree
    missing: list[ServerKey] = field(default_factory=list)  # in the model, not running: a reload adds them
    extra: list[ServerKey] = field(default_factory=list)  # running, not in the model: a reload removes them

    @property
    def needs_reload(self) -> bool:
        return bool(self.missing or self.extra)


def running_admin(flags: int) -> AdminState:
    """The admin state a server runs in. A `disabled` server set ready at runtime keeps only CONFIG_MAINT: it serves."""
    if flags & (AdminFlag.FORCED_MAINT | AdminFlag.INHERITED_MAINT):
        return "maint"
    if flags & (AdminFlag.FORCED_DRAIN | AdminFlag.INHERITED_DRAIN):
        return "drain"
    return "ready"


def drift(rows: list[ServerStateRow], desired: Mapping[ServerKey, DesiredServer]) -> Drift:
    found = Drift()
    running = {(r.backend, r.server): r for r in rows}
    backends = {b for b, _ in desired}
    for key, want in desired.items():
        row = running.get(key)
        if row is None:
            found.missing.append(key)
            continue
        ref = f"{key[0]}/{key[1]}"
        if running_admin(row.admin_flags) != want.admin:
            found.commands.append(f"set server {ref} state {want.admin}")
        if row.user_weight != want.weight:
            found.commands.append(f"set server {ref} weight {want.weight}")
    for key in running:
        if key[0] in backends and key not in desired and key[1] != FALLBACK_SERVER:
            found.extra.append(key)
    return found
