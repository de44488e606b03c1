"""The plan of a change: what differs between the running model and the new one, and how HAProxy gets there.

`make_plan(old, new, env)` is pure. It returns the readable model diff and one of three methods:

  - none:    HAProxy carries nothing that changed (the change is Layer 4's, or only the order of
             services moved): the file is written again, nothing is reloaded;
  - runtime: every change is a runtime API operation, applied without a reload (the worker stays):
             a real server's state (online / drain / halt) or weight, its IP address or port, a real
             server added (`add server`) or removed (drain, maint, `del server`);
  - reload:  anything else, with the reasons: a hitless reload of the new file (the old worker
             finishes its connections; server-state-file keeps states and health).

What needs a reload although it touches only real servers, and why:
  - adding or removing a real server of a service with cookie persistence (HAProxy refuses the
    `cookie` keyword for servers added at runtime; removal is kept symmetric);
  - adding a real server given by DNS name (runtime servers are never resolved);
  - adding a backup real server before another backup or with a fallback server (a runtime server
    goes last, and the order of backups is their priority);
  - adding a re-encrypted real server whose CA file HAProxy has not loaded (it reads CA files at startup);
  - a service's first real server, or its last one removed (its backend appears or disappears);
  - any other field of a real server (backup, max_connections, encrypted), or a port that switches
    between translated and not translated;
  - a new order of backup real servers.
(The renderer writes no `static-rr`, and `balance source` is written with consistent hashing, so
the other two cases where HAProxy refuses dynamic servers never arise.)

Layer 4 services are nftables'; a change to them is listed in `layer4` for that engine.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Iterable

from ...model.checks import resolve
from ...model.config import Config, CookiePersistence, RealServer, RealServerState, VirtualService
from ...model.diff import Change, diff
from .dynamic import NotDynamic, add_server_words
from .render import HAProxyEnv, backend_view


class Method(str, Enum):
    NONE = "none"
    RUNTIME = "runtime"
    RELOAD = "reload"


class OpKind(str, Enum):
    ADD = "add"
    ADDRESS = "address"
    WEIGHT = "weight"
    STATE = "state"
    DELETE = "delete"


_ORDER = {OpKind.ADD: 0, OpKind.ADDRESS: 1, OpKind.WEIGHT: 2, OpKind.STATE: 3, OpKind.DELETE: 4}


@dataclass(frozen=True)
class Operation:
    """One runtime API step on one real server of one service."""

    kind: OpKind
    service: str
    real_server: str
    state: RealServerState | None = None  # STATE, ADD: the state to run in
    weight: int | None = None  # WEIGHT; STATE online and ADD: the configured weight
    address: str | None = None  # ADDRESS: the IP address; ADD: HAProxy's ADDR[:PORT]
    port: int | None = None  # ADDRESS
    options: tuple[str, ...] = ()  # ADD: the server line's options, in HAProxy's words

    @property
    def ref(self) -> str:
        return f"{self.service}/{self.real_server}"

    def __str__(self) -> str:
        if self.kind is OpKind.STATE:
            assert self.state is not None
            extra = f" (weight {self.weight})" if self.state is RealServerState.ONLINE and self.weight is not None else ""
            return f"{self.state.value} {self.ref}{extra}"
        if self.kind is OpKind.WEIGHT:
            return f"weight {self.ref} {self.weight}"
        if self.kind is OpKind.ADDRESS:
            return f"address {self.ref} {self.address}" + (f" port {self.port}" if self.port else "")
        if self.kind is OpKind.ADD:
            state = self.state.value if self.state else "online"
            return f"add {self.ref} at {self.address}, {state}"
        return f"remove {self.ref} (drain, halt, then delete once its connections end)"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "service": self.service,
            "real_server": self.real_server,
            "state": self.state.value if self.state else None,
            "weight": self.weight,
            "address": self.address,
            "port": self.port,
            "text": str(self),
        }


@dataclass
class Plan:
    changes: list[Change]
    operations: list[Operation] = field(default_factory=list)
    reload_reasons: list[str] = field(default_factory=list)
    layer4: list[str] = field(default_factory=list)  # Layer 4 services that changed (nftables)

    @property
    def method(self) -> Method:
        if self.reload_reasons:
            return Method.RELOAD
        if self.operations:
            return Method.RUNTIME
        return Method.NONE

    @property
    def empty(self) -> bool:
        return not self.changes

    def lines(self) -> list[str]:
        """The plan as a person reads it."""
        out: list[str] = []
        if not self.changes:
            return ["no change: the appliance already runs this configuration"]
        out.append("changes:")
        out += [f"  {c}" for c in self.changes]
        if self.method is Method.RELOAD:
            out.append("HAProxy: hitless reload (the old worker finishes its connections), because:")
            out += [f"  {r}" for r in self.reload_reasons]
        elif self.method is Method.RUNTIME:
            out.append("HAProxy: runtime operations, no reload:")
            out += [f"  {op}" for op in self.operations]
        else:
            out.append("HAProxy: nothing to change")
        if self.layer4:
            out.append("nftables (Layer 4): " + ", ".join(self.layer4))
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method.value,
            "changes": [c.as_dict() for c in self.changes],
            "operations": [op.as_dict() for op in self.operations],
            "reload_reasons": list(self.reload_reasons),
            "layer4": list(self.layer4),
            "text": self.lines(),
        }


def _carried(vs: VirtualService | None) -> bool:
    """Whether HAProxy carries the service (Layer 7 and backend-only)."""
    return vs is not None and not vs.mode.is_layer4


def _ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def _paths(changes: Iterable[Change], prefix: str, exclude: str | None = None) -> list[str]:
    return [
        c.path for c in changes
        if (c.path == prefix or c.path.startswith(prefix + ".") or c.path.startswith(prefix + "["))
        and not (exclude and (c.path == exclude or c.path.startswith(exclude + ".") or c.path.startswith(exclude + "[")))
    ]  # fmt: skip


def _loaded_ca_files(config: Config, env: HAProxyEnv) -> set[str]:
    """CA files the running HAProxy loaded: those of re-encrypted servers with verification."""
    found = set()
    for vs in config.virtual_services:
        if not _carried(vs) or vs.server_tls.verify != "required" or not vs.server_tls.ca_file:
            continue
        if any(rs.encrypted for rs in vs.real_servers) or (vs.fallback and vs.fallback.encrypted):
            found.add(str(resolve(vs.server_tls.ca_file, env.base_dir)))
    return found


def make_plan(old: Config, new: Config, env: HAProxyEnv, old_env: HAProxyEnv | None = None) -> Plan:
    """What changes from `old` (what runs) to `new`, and how HAProxy gets there. Pure."""
    changes = diff(old, new)
    plan = Plan(changes)
    if not changes:
        return plan
    if old.settings != new.settings:
        plan.reload_reasons.append("settings changed: " + ", ".join(_paths(changes, "settings")))
    if old.resolvers != new.resolvers:  # HAProxy reads resolvers sections from its file only
        plan.reload_reasons.append("resolvers changed: " + ", ".join(_paths(changes, "resolvers")))
    before = {vs.name: vs for vs in old.virtual_services}
    after = {vs.name: vs for vs in new.virtual_services}
    names = list(after) + [n for n in before if n not in after]
    ca_files: set[str] | None = None
    for name in names:
        a, b = before.get(name), after.get(name)
        if a == b:
            continue
        here = f"virtual_services[{name}]"
        if (a is not None and a.mode.is_layer4) or (b is not None and b.mode.is_layer4):
            plan.layer4.append(name)
        if not _carried(a) and not _carried(b):
            continue
        if a is None or b is None:
            plan.reload_reasons.append(f"{here}: {'added' if a is None else 'removed'}")
            continue
        if not _carried(a) or not _carried(b):
            plan.reload_reasons.append(f"{here}.mode: {a.mode.value} -> {b.mode.value}")
            continue
        if a.model_dump(exclude={"real_servers"}) != b.model_dump(exclude={"real_servers"}):
            plan.reload_reasons.append("changed: " + ", ".join(_paths(changes, here, exclude=f"{here}.real_servers")))
            continue
        if bool(a.real_servers) != bool(b.real_servers):
            what = "its first real server added" if b.real_servers else "its last real server removed"
            plan.reload_reasons.append(f"{here}.real_servers: {what} (its backend appears or disappears)")
            continue
        if ca_files is None:
            ca_files = _loaded_ca_files(old, old_env or env)
        _real_server_plan(plan, a, b, new, env, ca_files)
    plan.operations.sort(key=lambda op: _ORDER[op.kind])
    if plan.reload_reasons:
        plan.operations = []
    return plan


def _real_server_plan(plan: Plan, a: VirtualService, b: VirtualService, new: Config, env: HAProxyEnv, ca_files: set[str]) -> None:
    here = f"virtual_services[{b.name}].real_servers"
    old = {rs.name: rs for rs in a.real_servers}
    new_rs = {rs.name: rs for rs in b.real_servers}
    cookie = isinstance(b.persistence, CookiePersistence)

    backups_before = [rs.name for rs in a.real_servers if rs.backup and rs.name in new_rs and new_rs[rs.name].backup]
    backups_after = [rs.name for rs in b.real_servers if rs.backup and rs.name in old and old[rs.name].backup]
    if backups_before != backups_after:
        plan.reload_reasons.append(f"{here}: the order of backup real servers changed (it is their priority)")

    for name, _rs in old.items():
        if name not in new_rs:
            if cookie:
                plan.reload_reasons.append(f"{here}[{name}]: removed from a service with cookie persistence")
            else:
                plan.operations.append(Operation(OpKind.DELETE, b.name, name))

    view = None
    for position, rs in enumerate(b.real_servers):
        if rs.name in old:
            _changed_real_server(plan, b, old[rs.name], rs)
            continue
        reason = _cannot_add(b, rs, position, env, ca_files)
        if reason is None:
            if view is None:
                view = backend_view(new, env, b.name)
            try:
                address, options = add_server_words(view, rs.name)  # type: ignore[arg-type]
            except NotDynamic as exc:
                reason = str(exc)
        if reason is not None:
            plan.reload_reasons.append(f"{here}[{rs.name}]: added, but {reason}")
            continue
        plan.operations.append(
            Operation(OpKind.ADD, b.name, rs.name, state=rs.state, weight=rs.weight, address=address, options=options)
        )


def _cannot_add(vs: VirtualService, rs: RealServer, position: int, env: HAProxyEnv, ca_files: set[str]) -> str | None:
    if isinstance(vs.persistence, CookiePersistence):
        return "HAProxy refuses the cookie keyword (cookie persistence) for servers added at runtime"
    if not _ip(rs.address):
        return f"its address {rs.address} is a DNS name, which HAProxy does not resolve for servers added at runtime"
    if rs.backup:
        later = [other.name for other in vs.real_servers[position + 1 :] if other.backup]
        if later or vs.fallback is not None:
            return "a backup added at runtime goes after the other backups and the fallback, and their order is their priority"
    if rs.encrypted and vs.server_tls.verify == "required" and vs.server_tls.ca_file:
        if str(resolve(vs.server_tls.ca_file, env.base_dir)) not in ca_files:
            return "its CA file is not loaded yet (HAProxy reads CA files at startup)"
    return None


_RUNTIME_FIELDS = {"weight", "state", "address", "port"}


def _changed_real_server(plan: Plan, vs: VirtualService, a: RealServer, b: RealServer) -> None:
    here = f"virtual_services[{vs.name}].real_servers[{b.name}]"
    fixed = [f for f in RealServer.model_fields if f not in _RUNTIME_FIELDS and getattr(a, f) != getattr(b, f)]
    if fixed:
        plan.reload_reasons.append(", ".join(f"{here}.{f} changed" for f in fixed))
        return
    if (a.address, a.port) != (b.address, b.port):
        if not _ip(b.address):
            plan.reload_reasons.append(f"{here}.address: {b.address} is a DNS name (resolved when HAProxy loads its file)")
            return
        if (a.port is None) != (b.port is None):
            plan.reload_reasons.append(f"{here}.port: switches between a fixed port and the client's port")
            return
        plan.operations.append(Operation(OpKind.ADDRESS, vs.name, b.name, address=b.address, port=b.port))
    if a.weight != b.weight:
        plan.operations.append(Operation(OpKind.WEIGHT, vs.name, b.name, weight=b.weight))
    if a.state != b.state:
        plan.operations.append(Operation(OpKind.STATE, vs.name, b.name, state=b.state, weight=b.weight))
