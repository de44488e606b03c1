"""The dashboard as a topology (pure): each VIP with its rules and the backend-only services they reach nested
under it, counts per group, and what a drain or halt of a real server would do to its service.

True PACS has 6 VIPs and 29 backend-only services: as one flat list that was ~3,500 px; as groups (collapsed when
all is well) it fits a screen. A backend-only service reached from several VIPs is shown in full under the first
one (configuration order) and named under the others; one reached by none is in the group "not reached by any
VIP", so that every service is on the page exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..controller.status import ServerState, ServiceState, VirtualServiceStatus
from ..model.config import Config, Mode, Rule, VirtualService
from . import view

# real-server states that take new requests (NO_CHECK: not checked, always taken as up)
SERVING = (ServerState.UP, ServerState.NO_CHECK)
# states the dashboard's filter offers, as the server counts name them
COUNTED = ("up", "down", "drain", "halt", "unknown")
_COUNT_OF = {ServerState.UP: "up", ServerState.NO_CHECK: "up", ServerState.DOWN: "down", ServerState.DRAIN: "drain",
             ServerState.MAINT: "halt", ServerState.UNKNOWN: "unknown"}  # fmt: skip
UNREACHED = "not reached by any VIP"


@dataclass
class Route:
    """One way into a backend-only service: a rule (or the default_service) of a VIP."""

    rule: str  # the rule's name, or 'default'
    condition: str  # 'path_begins /inference', or 'anything no rule takes'
    target: str  # the backend-only service, or 'redirect' / 'deny 403'
    shown_elsewhere: bool = False  # the target is nested under an earlier VIP
    is_default: bool = False  # the service's default_service, not a rule


@dataclass
class Group:
    """A VIP and what it reaches, as one collapsible block of the dashboard."""

    name: str
    head: VirtualServiceStatus | None  # None for the group of unreached backend-only services
    routes: list[Route] = field(default_factory=list)
    members: list[VirtualServiceStatus] = field(default_factory=list)  # the head first, then its backends
    counts: dict[str, int] = field(default_factory=dict)  # up / down / drain / halt / unknown real servers
    look: str = "st-up"  # the worst state inside, as a CSS class

    @property
    def problem(self) -> bool:
        """Open by default: something inside is down, drained, halted, or a service cannot serve."""
        return self.look in ("st-down", "st-drain")

    @property
    def states(self) -> str:
        """The server states present, for the dashboard's state filter ('up down')."""
        return " ".join(s for s in COUNTED if self.counts.get(s))

    @property
    def search_text(self) -> str:
        """What the name filter matches: every service's and real server's name and address, lower case."""
        words = [self.name]
        for vs in self.members:
            words += [vs.name, *vs.listen, *(rs.name for rs in vs.real_servers), *(rs.address for rs in vs.real_servers)]
        return " ".join(words).lower()


def _condition(rule: Rule) -> str:
    m = rule.match
    parts = [f"{name} {' '.join(str(v) for v in getattr(m, name))}"
             for name in ("path_begins", "path_ends", "host", "sni", "source") if getattr(m, name)]  # fmt: skip
    parts += [f"header {h.name}" for h in m.header]
    return "; ".join(parts)


def _target(rule: Rule) -> str:
    if rule.use_service is not None:
        return rule.use_service
    if rule.redirect is not None:
        return "redirect"
    return f"deny {rule.deny.status}" if rule.deny is not None else "-"


def _rank(css: str) -> int:
    return {"st-up": 0, "st-unknown": 1, "st-maint": 1, "st-drain": 2, "st-down": 3}.get(css, 1)


def _count(group: Group) -> None:
    counts = dict.fromkeys(COUNTED, 0)
    worst = "st-up"
    for vs in group.members:
        for rs in vs.real_servers:
            counts[_COUNT_OF.get(rs.state, "unknown")] += 1
        look = view.service_overview(vs)[0]
        if _rank(look) > _rank(worst):
            worst = look
    group.counts, group.look = counts, worst


def groups(config: Config, services: list[VirtualServiceStatus]) -> list[Group]:
    """The dashboard's groups, in configuration order: one per VIP (not backend-only), then the unreached ones."""
    statuses = {vs.name: vs for vs in services}
    by_name: dict[str, VirtualService] = {vs.name: vs for vs in config.virtual_services}
    placed: set[str] = set()
    found: list[Group] = []
    for vs in config.virtual_services:
        if vs.mode is Mode.BACKEND_ONLY or vs.name not in statuses:
            continue
        group = Group(name=vs.name, head=statuses[vs.name], members=[statuses[vs.name]])
        targets = [(r.name, _condition(r), _target(r), False) for r in vs.rules]
        if vs.default_service:
            targets.append(("default", "anything no rule takes", vs.default_service, True))
        for rule, condition, target, is_default in targets:
            reachable = target in by_name and by_name[target].mode is Mode.BACKEND_ONLY and target in statuses
            elsewhere = reachable and target in placed and statuses[target] not in group.members
            group.routes.append(Route(rule, condition, target, shown_elsewhere=elsewhere, is_default=is_default))
            if reachable and target not in placed:
                placed.add(target)
                group.members.append(statuses[target])
        placed.add(vs.name)
        found.append(group)
    rest = [statuses[vs.name] for vs in config.virtual_services if vs.name in statuses and vs.name not in placed]
    if rest:
        found.append(Group(name=UNREACHED, head=None, members=rest))
    for group in found:
        _count(group)
    return found


def parents(found: list[Group]) -> dict[str, list[str]]:
    """Backend-only service -> the VIPs whose rules reach it."""
    reached: dict[str, list[str]] = {}
    for group in found:
        for route in group.routes:
            if group.name not in reached.setdefault(route.target, []):
                reached[route.target].append(group.name)
    return reached


def last_server_warning(vs: VirtualServiceStatus, real_server: str, reached_from: list[str] | None = None) -> str | None:
    """What taking `real_server` out of new requests (drain or halt) does to its service, when that is drastic.

    HAProxy sends new requests to the active (non-backup) servers that are up; with none, to the backup servers;
    with none of those either, to the fallback server (or maintenance page) when there is one, else it answers
    503. None when other servers still take new requests, or when the engine does not report the states
    (Layer 4 services: nftables does not say): then it goes by the configuration alone.
    """
    if vs.real_servers and all(rs.state is ServerState.UNKNOWN for rs in vs.real_servers):
        return _unobserved_warning(vs, real_server)
    active = [rs for rs in vs.real_servers if not rs.backup and rs.state in SERVING]
    backups = [rs for rs in vs.real_servers if rs.backup and rs.state in SERVING]
    serving = active or backups
    if real_server not in {rs.name for rs in serving} or len(serving) > 1:
        return None
    if active and backups:
        names = ", ".join(rs.name for rs in backups)
        return f"{real_server} is the last active server of {vs.name}: new requests go to its backup server(s) {names}."
    if vs.fallback is not None and vs.fallback.address.startswith("maintenance page"):
        outcome = "get the maintenance page (HTTP 503)"
    elif vs.fallback is not None:
        outcome = f"go to the fallback server {vs.fallback.address}"
    else:
        outcome = "get 503 (Service Unavailable)"
    via = f" that {' and '.join(reached_from)} send{'s' if len(reached_from) == 1 else ''} here" if reached_from else ""
    return f"service {vs.name} will have no server: new requests{via} {outcome}."


def _unobserved_warning(vs: VirtualServiceStatus, real_server: str) -> str | None:
    """No live states (Layer 4: nftables does not report them): the last real server the configuration keeps online."""
    online = [rs.name for rs in vs.real_servers if rs.configured_state == "online"]
    if online != [real_server]:
        return None
    return (
        f"{real_server} is the last real server of {vs.name} that the configuration keeps online: new connections "
        "will have no real server to go to (the appliance does not see this service's health, so it cannot say more)."
    )


def confirmation(vs: VirtualServiceStatus, real_server: str, action: str, reached_from: list[str] | None = None) -> str:
    """The question the drain and halt buttons ask before they act, with the last-server warning when it applies."""
    what = {
        "drain": f"Drain {real_server} of {vs.name}? It takes no new sessions; the open ones continue.",
        "halt": f"Halt {real_server} of {vs.name}? It takes no traffic at all.",
    }[action]
    warning = last_server_warning(vs, real_server, reached_from)
    return f"{what}\n\nWarning: {warning}" if warning else what


def dashboard_view(config: Config, services: list[VirtualServiceStatus]) -> dict:
    """What _dashboard.html needs besides the status: the groups, who reaches what, and the helpers it calls."""
    found = groups(config, services)
    return {"groups": found, "reached_from": parents(found), "last_server_warning": last_server_warning,
            "confirmation": confirmation, "service_states": service_states}  # fmt: skip


def service_states(vs: VirtualServiceStatus) -> str:
    """The states inside one service, for the state filter (a service row shows when one of them is chosen)."""
    found = {_COUNT_OF.get(rs.state, "unknown") for rs in vs.real_servers}
    if vs.state in (ServiceState.DOWN, ServiceState.STOPPED):
        found.add("down")
    return " ".join(s for s in COUNTED if s in found)


__all__ = ["COUNTED", "Group", "Route", "UNREACHED", "confirmation", "dashboard_view", "groups", "last_server_warning", "parents",
           "service_states"]  # fmt: skip
