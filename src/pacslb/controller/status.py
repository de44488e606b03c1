"""The appliance's live state in the field's words: virtual services and their real servers.

`build_status` is a pure function from the configuration and HAProxy's `show stat` rows to the status
model; the API serves it and `pacslb status` prints it. HAProxy's words (frontend, backend, server,
L7OK) are translated here and go no further.
"""

from __future__ import annotations

from enum import Enum
from typing import Iterable, Mapping

from pydantic import BaseModel, Field

from ..engines.haproxy.runtime import ProxyKind, StatRow
from ..model import Config, Mode, VirtualService


class ServerState(str, Enum):
    UP = "UP"
    DOWN = "DOWN"
    DRAIN = "DRAIN"  # takes no new sessions (drained by an operator, an agent, or weight 0)
    MAINT = "MAINT"  # halted: no traffic at all
    NO_CHECK = "no-check"  # not health-checked: always taken as up
    UNKNOWN = "UNKNOWN"  # the engine did not report it


class ServiceState(str, Enum):
    UP = "UP"  # takes traffic and at least one real server (or the fallback) can serve it
    DOWN = "DOWN"  # no real server can serve
    STOPPED = "STOPPED"  # not listening
    UNKNOWN = "UNKNOWN"  # the engine did not report it


class CheckOutcome(str, Enum):
    PASSED = "passed"
    FAILED = "failed"
    PENDING = "pending"  # no check has finished yet
    NONE = "none"  # not checked


class CheckResult(BaseModel):
    """The last health check of a real server."""

    outcome: CheckOutcome = CheckOutcome.NONE
    description: str | None = Field(default=None, description="what the check found, e.g. 'Layer7 check passed'")
    code: int | None = Field(default=None, description="HTTP status of the last HTTP check")
    info: str | None = Field(default=None, description="the server's or the network's own words, e.g. 'Connection refused'")
    duration_ms: int | None = None
    failures: int | None = Field(default=None, description="failed checks since start")
    type: str | None = Field(default=None, description="the health check's type: connect, http, dicom-echo, ...")
    by: str | None = Field(
        default=None, description="who runs the check: 'haproxy', or 'appliance' (pacslb's health-check service)"
    )
    changed_s: int | None = Field(default=None, description="appliance checks: seconds since the check's verdict last changed")
    in_progress: bool = Field(default=False, description="a check runs now; outcome, code and info are the last finished one's")

    def summary(self) -> str:
        """One line for tables: 'passed (status 200)', 'failed: Layer4 connection problem: Connection refused',
        with ' · checking' while the next check runs."""
        if self.outcome in (CheckOutcome.NONE, CheckOutcome.PENDING):
            return "-" if self.outcome is CheckOutcome.NONE else "pending"
        status = f"status {self.code}" if self.code else None  # 0 is no HTTP status: HAProxy's value before an answer
        if self.outcome is CheckOutcome.PASSED:
            line = f"passed ({status})" if status else "passed"
        else:
            reasons = [r for r in (self.description, self.info, status) if r]
            line = "failed: " + ": ".join(reasons) if reasons else "failed"
        return line + (" · checking" if self.in_progress else "")


class Sessions(BaseModel):
    current: int = 0
    total: int = 0


class RealServerStatus(BaseModel):
    name: str
    address: str = Field(description="address:port the traffic goes to")
    state: ServerState
    transition: str | None = Field(default=None, description="a state change under way, e.g. 'going down (1/3)'")
    configured_state: str = Field(description="online, drain or halt, as the configuration says")
    weight: int | None = None
    backup: bool = False
    check: CheckResult = Field(default_factory=CheckResult)
    sessions: Sessions = Field(default_factory=Sessions)
    last_change_s: int | None = Field(default=None, description="seconds since the state last changed")


class VirtualServiceStatus(BaseModel):
    name: str
    mode: str
    listen: list[str] = Field(default_factory=list, description="address:port the service listens on")
    state: ServiceState
    note: str | None = None
    sessions: Sessions = Field(default_factory=Sessions)
    real_servers: list[RealServerStatus] = Field(default_factory=list)
    fallback: RealServerStatus | None = Field(default=None, description="where traffic goes when every real server is down")


class EngineStatus(BaseModel):
    name: str = "haproxy"
    running: bool
    master_pid: int | None = None
    workers: list[int] = Field(default_factory=list)
    adopted: bool = Field(default=False, description="found running when the controller started, and taken over")
    restarts: int = Field(default=0, description="times the controller restarted it after it died")
    reloads: int = 0
    error: str | None = None


class CheckWorkerStatus(BaseModel):
    """One process of the health-check service (settings.health.workers; none when the checks run in the controller)."""

    index: int
    pid: int | None = Field(default=None, description="null between two lives (a restart waits its backoff)")
    real_servers: int = Field(description="the watches of its shard")
    restarts: int = Field(default=0, description="times it died and was started again")
    last_exit: str | None = Field(default=None, description="how its last life ended, e.g. 'was killed by signal 9'")


class ControllerStatus(BaseModel):
    pid: int | None = None
    state_dir: str
    config_file: str | None = None
    started_at: float | None = None
    check_workers: list[CheckWorkerStatus] = Field(default_factory=list)


class ApplianceStatus(BaseModel):
    controller: ControllerStatus | None = Field(description="null when the controller does not run")
    engine: EngineStatus
    virtual_services: list[VirtualServiceStatus]


# --- translation from HAProxy's words ------------------------------------------------------------

FALLBACK_SERVER = "fallback"  # the renderer's name for a service's fallback server
_PASSED = {"L4OK", "L6OK", "L7OK", "L7OKC", "PROCOK"}
_PENDING = {"UNK", "INI", ""}


def server_state(status: str, last_check: CheckOutcome = CheckOutcome.NONE) -> tuple[ServerState, str | None]:
    """HAProxy's server status ('UP 1/3', 'DRAIN (agent)', 'MAINT (via b/s)', 'no check') to state and transition.

    'UP 1/3' also shows before the first check ends (HAProxy starts a server one pass from 'up'), so a
    transition is named only when the last check agrees with it.
    """
    words = status.strip()
    head, _, rest = words.partition(" ")
    fraction = rest if rest[:1].isdigit() else None
    going_down = f"going down ({fraction})" if fraction and last_check is CheckOutcome.FAILED else None
    if head == "MAINT":
        return ServerState.MAINT, rest.strip("()") or None
    if head in ("DRAIN", "NOLB"):
        return ServerState.DRAIN, going_down or ("set by the agent" if rest == "(agent)" else None)
    if words == "no check":
        return ServerState.NO_CHECK, None
    if head == "UP":
        return ServerState.UP, going_down
    if head == "DOWN":
        if fraction:
            return ServerState.DOWN, f"going up ({fraction})" if last_check is CheckOutcome.PASSED else None
        return ServerState.DOWN, "set by the agent" if rest == "(agent)" else None
    return ServerState.UNKNOWN, words or None


# The result of an appliance-run check of one real server, as the health-check service reports it:
# {"type": "dicom-echo", "up": True | False | None (not decided yet), "reason": str | None,
#  "changed_at": time.time() of the last change | None}
ApplianceChecks = Mapping[tuple[str, str], Mapping]


def layer4_server_state(rs, check: Mapping | None) -> tuple[ServerState, str | None]:
    """A Layer 4 real server's state: what the controller put in the nftables maps (pure).

    Layer4 (engines/nftables/engine.py) schedules a real server when it is online, of weight above 0, and
    not found down by the appliance's check; drain keeps its established flows, halt drops them.
    """
    if rs.state.value == "halt":
        return ServerState.MAINT, "halted"
    if rs.state.value == "drain":
        return ServerState.DRAIN, "drained"
    up = check.get("up") if check is not None else None
    if up is False:
        return ServerState.DOWN, check.get("reason")  # type: ignore[union-attr]
    if rs.weight == 0:
        return ServerState.DRAIN, "weight 0"
    if check is None:
        return ServerState.NO_CHECK, None
    return (ServerState.UP, None) if up else (ServerState.UNKNOWN, "check pending")


def appliance_check_result(result: Mapping, now: float | None = None) -> CheckResult:
    """The check column of a real server checked by the appliance (pure; `now` for changed_s)."""
    up = result.get("up")
    outcome = CheckOutcome.PENDING if up is None else CheckOutcome.PASSED if up else CheckOutcome.FAILED
    changed_at = result.get("changed_at")
    return CheckResult(
        outcome=outcome,
        description=result.get("reason") if up is False else None,
        info=result.get("reason") if up is not False else None,
        type=result.get("type"),
        by="appliance",
        changed_s=int(now - changed_at) if now is not None and changed_at is not None else None,
    )


def check_result(row: StatRow) -> CheckResult:
    if not row.checked:
        return CheckResult()
    raw = (row.check_status or "").strip()
    code = raw.lstrip("* ").strip()  # '* L7OK': a check is in flight, L7OK was the last one's result
    if code in _PENDING:
        outcome = CheckOutcome.PENDING
    elif code in _PASSED:
        outcome = CheckOutcome.PASSED
    else:
        outcome = CheckOutcome.FAILED
    return CheckResult(
        outcome=outcome,
        description=row.check_description,
        code=row.check_code or None,  # HAProxy shows 0 while a check is in flight: not an HTTP status
        info=row.check_info,
        duration_ms=row.check_duration_ms if row.check_duration_ms is not None and row.check_duration_ms >= 0 else None,
        failures=row.check_failures,
        in_progress=raw.startswith("*"),
    )


def _service_state(status: str) -> ServiceState:
    head = status.strip().split(" ")[0]
    if head in ("UP", "OPEN", "FULL"):
        return ServiceState.UP
    if head == "DOWN":
        return ServiceState.DOWN
    if head == "STOP":
        return ServiceState.STOPPED
    return ServiceState.UNKNOWN


def _address(host: str, port: int | None) -> str:
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}" if port is not None else host


def _listen(vs: VirtualService) -> list[str]:
    return [_address(listener.address, None) + f":{listener.port}" for listener in vs.listen]


def virtual_service_status(
    vs: VirtualService, rows: Iterable[StatRow], checks: ApplianceChecks | None = None, now: float | None = None
) -> VirtualServiceStatus:
    """One virtual service from the `show stat` rows of the proxies named after it (and the appliance's checks)."""
    checks = checks or {}
    mine = [r for r in rows if r.proxy == vs.name]
    frontend = next((r for r in mine if r.kind is ProxyKind.FRONTEND), None)
    backend = next((r for r in mine if r.kind is ProxyKind.BACKEND), None)
    servers = {r.name: r for r in mine if r.kind is ProxyKind.SERVER}

    real_servers = []
    for rs in vs.real_servers:
        row = servers.get(rs.name)
        appliance = checks.get((vs.name, rs.name))
        if row is None:
            state, transition = layer4_server_state(rs, appliance) if vs.mode.is_layer4 else (ServerState.UNKNOWN, None)
            real_servers.append(
                RealServerStatus(
                    name=rs.name,
                    address=_address(rs.address, rs.port),
                    state=state,
                    transition=transition,
                    configured_state=rs.state.value,
                    weight=rs.weight,
                    backup=rs.backup,
                    check=appliance_check_result(appliance, now) if appliance else CheckResult(),
                )
            )
            continue
        check = check_result(row)
        if check.outcome is not CheckOutcome.NONE:
            check = check.model_copy(update={"type": vs.health_check.type, "by": "haproxy"})
        state, transition = server_state(row.status, check.outcome)
        if appliance:
            # HAProxy's own check of such a server is only a TCP connect; the appliance's says more,
            # unless the connect itself fails (then that is why the server is down)
            if not (check.outcome is CheckOutcome.FAILED and appliance.get("up") is not False):
                check = appliance_check_result(appliance, now)
            if transition == "set by the agent":
                transition = f"set by the appliance's {appliance.get('type') or ''} check".replace("  ", " ")
        if state is ServerState.UP and row.weight == 0:
            # HAProxy reports a server of weight 0 UP (the configuration file writes drain as weight 0):
            # it takes no new sessions, which is what DRAIN means here
            state, transition = ServerState.DRAIN, transition or "weight 0"
        real_servers.append(
            RealServerStatus(
                name=rs.name,
                address=row.address or _address(rs.address, rs.port),
                state=state,
                transition=transition,
                configured_state=rs.state.value,
                weight=row.user_weight if row.user_weight is not None else row.weight,
                backup=bool(row.backup),
                check=check,
                sessions=Sessions(current=row.sessions_current, total=row.sessions_total),
                last_change_s=row.last_change_s,
            )
        )

    note = None
    if vs.mode.is_layer4:
        serving = (ServerState.UP, ServerState.NO_CHECK, ServerState.DRAIN)
        state = ServiceState.UP if any(s.state in serving for s in real_servers) else ServiceState.DOWN
        note = "carried by nftables: states are the model's and the appliance's checks' (what the nftables maps hold); sessions are not counted"
    elif backend is None and frontend is not None and not vs.real_servers:
        state = _service_state(frontend.status)  # its rules send every request to backend-only services
    elif backend is None:
        state = ServiceState.UNKNOWN
        note = "HAProxy does not report this service"
    else:
        state = _service_state(backend.status)
        if frontend is not None and _service_state(frontend.status) is ServiceState.STOPPED:
            state = ServiceState.STOPPED
    fallback = None
    if vs.fallback is not None and vs.fallback.maintenance_page:
        fallback = RealServerStatus(
            name=FALLBACK_SERVER,
            address="maintenance page (HTTP 503)",
            state=ServerState.NO_CHECK,
            configured_state="online",
            backup=True,
        )
    elif vs.fallback is not None:
        row = servers.get(FALLBACK_SERVER)
        check = check_result(row) if row else CheckResult()
        fallback = RealServerStatus(
            name=FALLBACK_SERVER,
            address=row.address if row and row.address else _address(vs.fallback.address, vs.fallback.port),
            state=server_state(row.status, check.outcome)[0] if row else ServerState.UNKNOWN,
            configured_state="online",
            backup=True,
            check=check,
            sessions=Sessions(current=row.sessions_current, total=row.sessions_total) if row else Sessions(),
            last_change_s=row.last_change_s if row else None,
        )
    counted = frontend if frontend is not None and vs.mode is not Mode.BACKEND_ONLY else backend
    sessions = Sessions(current=counted.sessions_current, total=counted.sessions_total) if counted else Sessions()
    return VirtualServiceStatus(
        name=vs.name,
        mode=vs.mode.value,
        listen=_listen(vs),
        state=state,
        note=note,
        sessions=sessions,
        real_servers=real_servers,
        fallback=fallback,
    )


def build_status(
    config: Config,
    rows: list[StatRow],
    engine: EngineStatus,
    controller: ControllerStatus | None,
    checks: ApplianceChecks | None = None,
    now: float | None = None,
) -> ApplianceStatus:
    """Every virtual service of the configuration, in its order, with the live state HAProxy reports
    and the results of the checks the appliance runs itself (`checks`, by (service, real server))."""
    return ApplianceStatus(
        controller=controller,
        engine=engine,
        virtual_services=[virtual_service_status(vs, rows, checks, now) for vs in config.virtual_services],
    )
