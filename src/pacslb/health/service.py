"""The health-check service: the appliance runs the checks HAProxy cannot, and tells HAProxy the results.

For every Layer 7 and backend-only virtual service whose health check is dicom-echo, hl7, amqp or
external, one watch per real server runs (runner.Checker: interval, timeout, rise, fall; the check port
is health_check.port or the real server's port): in check worker processes, the watches sharded over
settings.health.workers of them (health/workers.py), or in the controller itself when that is 1.
HAProxy learns the results through its agent-check protocol: each such server line carries

    agent-check agent-addr 127.0.0.1 agent-port <settings.health.agent_port>
                agent-send <service>/<real server> agent-inter <interval>

and this service answers on 127.0.0.1:<agent_port> with 'up' or 'down #<reason>'. Why the agent and
not only the runtime API (docs/health-checks.md has the whole argument):
  - HAProxy asks again every interval, so a reload, a restarted HAProxy or a restarted controller
    converge by themselves; runtime-API states would need replaying after each of them;
  - an agent that cannot be reached changes nothing in HAProxy: a dead controller takes no server
    down, and the server line's plain `check` (TCP connect) still takes a dead server out;
  - 'up' and 'down' are operational states: an operator's drain or halt is never touched
    (the agent's 'ready', 'drain' and 'maint' are admin states, and this service never says them).
A state change is also pushed at once through the runtime API (`set server S/R agent up|down`): the
fast path; the agent's next answer says the same.

The agent port is held from the start of the appliance to its end, whether or not any service uses such
a check, and it is privileged by default: no local user can answer HAProxy in the appliance's place
(HealthService; docs/security.md, "The agent-check port").

Until a watch has seen `rise` passes or `fall` failures (after a controller restart, or for a new
server) it answers nothing, and HAProxy keeps the state it has.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from pathlib import Path

from ..engines.haproxy.runtime import RuntimeAPI, RuntimeAPIError
from ..model.config import APPLIANCE_CHECK_TYPES, Config, Mode, VirtualService
from .agent_server import AgentServer
from .base import CheckContext, Target
from .probes import probe_for
from .runner import Checker, Watch
from .shards import worker_count
from .workers import Seen, WorkerPool

log = logging.getLogger("pacslb.health")

AGENT_HOST = "127.0.0.1"
MAX_REASON = 200  # HAProxy shows the description in `show stat` and its log; keep it one short line
_UNSAFE = re.compile(r"[\x00-\x1f\x7f#]")
UNPRIVILEGED_PORT_START = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")


def unprivileged_port_start() -> int:
    """The lowest port a process without CAP_NET_BIND_SERVICE may bind (net.ipv4.ip_unprivileged_port_start)."""
    try:
        return int(UNPRIVILEGED_PORT_START.read_text().strip())
    except (OSError, ValueError):
        return 1024


def cannot_listen(port: int, exc: OSError, consequence: str) -> str:
    """The error of an agent port that cannot be had: the field, the reason, what follows and the fix."""
    reason = os.strerror(exc.errno) if exc.errno else str(exc)  # asyncio's own wording repeats the address
    return (
        f"settings.health.agent_port: cannot listen on {AGENT_HOST}:{port} ({reason}): {consequence}; "
        f"stop what listens there (ss -ltnp 'sport = :{port}') or choose a free port below 1024"
    )


def appliance_checked(config: Config) -> list[VirtualService]:
    """The services whose real servers the appliance checks itself (Layer 7 and backend-only)."""
    return [
        vs
        for vs in config.virtual_services
        if (vs.mode.is_layer7 or vs.mode is Mode.BACKEND_ONLY)
        and vs.health_check.type in APPLIANCE_CHECK_TYPES
        and vs.real_servers
    ]


def context(vs: VirtualService) -> CheckContext:
    """The VIP and VIP port an `external` check's script is given: the service's first listener
    (none for a backend-only service)."""
    if not vs.listen:
        return CheckContext()
    return CheckContext(vip=vs.listen[0].address, vip_port=vs.listen[0].port.first)


def watches(config: Config) -> list[Watch]:
    """One watch per real server of every appliance-checked service (pure but for building probes)."""
    found: list[Watch] = []
    for vs in appliance_checked(config):
        check = vs.health_check
        probe = probe_for(check, context(vs))
        if probe is None:
            log.error("no probe for the %s check of %s: its real servers are not checked by the appliance", check.type, vs.name)
            continue
        for rs in vs.real_servers:
            port = check.port or rs.port  # validation: one of them is set
            assert port is not None
            found.append(
                Watch((vs.name, rs.name), Target(rs.address, port), probe, check.interval.seconds, check.rise, check.fall)
            )
    return found


def reason_text(reason: str) -> str:
    """A check's reason as an agent description: one line, no '#', bounded."""
    text = _UNSAFE.sub(" ", reason).strip()
    return text[:MAX_REASON] or "check failed"


def agent_reply(watch: Watch | Seen | None) -> str:
    """What HAProxy is told about one server: '' (nothing known yet), 'up', or 'down #reason'. Pure."""
    if watch is None or not watch.decided:
        return ""
    if watch.up:
        return "up"
    return "down #" + reason_text(watch.last.reason if watch.last else "check failed")


class HealthService:
    """A subsystem of the appliance: watches, the agent port, and results for `pacslb status`. `admin_socket` is
    HAProxy's stats socket, where state changes are pushed at once (None: only through the agent port).

    The agent port is held for the whole life of the appliance, whether or not a service uses an
    appliance-run check: a port left free is a port a local user can listen on first, and HAProxy would
    then ask that process whether real servers are up (docs/security.md). `listen` binds it before
    the engines start; a change that moves it binds the new port first (`prepare`, a precondition of
    the change transaction) and is refused when it cannot; the old port is closed once the change is
    applied (`applied`), or the new one when the change did not land (`release`)."""

    name = "health checks"

    def __init__(self, admin_socket: Path | str | None) -> None:
        self.admin_socket = str(admin_socket) if admin_socket is not None else None
        self.checker = Checker(self._changed)  # the watches when settings.health.workers is 1
        self.pool: WorkerPool | None = None  # ... or their check workers, when it is more
        self.agent: AgentServer | None = None  # the listener of the running configuration's agent_port
        self._prepared: dict[int, AgentServer] = {}  # listeners bound for changes not yet applied, by port
        self.config: Config | None = None
        self.check_types: dict[tuple[str, str], str] = {}

    # --- the agent port -----------------------------------------------------------------------------

    def answer(self, request: str) -> str:
        """Answer one agent check: `request` is '<service>/<real server>'."""
        service, _, server = request.strip().partition("/")
        return agent_reply(self.watch((service, server)))

    def watch(self, key: tuple[str, str]) -> Watch | Seen | None:
        """What is known of one watched real server, wherever its checks run."""
        found = self.checker.watches.get(key)
        if found is None and self.pool is not None:
            return self.pool.seen.get(key)
        return found

    async def _bind(self, port: int) -> AgentServer:
        """A listener on AGENT_HOST:`port`; raises OSError when it cannot."""
        agent = AgentServer(self.answer, AGENT_HOST, port)
        await agent.start()
        log.info("health-check results served to HAProxy on %s:%d (agent-check)", AGENT_HOST, agent.bound_port or port)
        if port >= unprivileged_port_start():
            log.warning("settings.health.agent_port %d is not a privileged port: a local user could listen on it "
                        "while the appliance is down; choose a port below %d", port, unprivileged_port_start())  # fmt: skip
        return agent

    async def listen(self, config: Config) -> None:
        """Hold the configuration's agent port (at startup, before the engines start: HAProxy asks it as soon
        as it runs). Raises SubsystemError naming settings.health.agent_port when it cannot."""
        from ..serving import SubsystemError

        port = config.settings.health.agent_port
        if self.agent is not None and self.agent.port == port:
            return
        try:
            agent = await self._bind(port)
        except OSError as exc:
            raise SubsystemError(cannot_listen(port, exc, "the appliance does not start")) from None
        if self.agent is not None:
            await self.agent.close()
        self.agent = agent

    async def prepare(self, old: Config, new: Config) -> str | None:
        """A precondition of every change (change/service.py): the new configuration's agent port is listened
        on before any engine commits it. Returns why the change is refused, or None."""
        port = new.settings.health.agent_port
        if self.agent is None:  # not listening (an appliance that does not run): nothing to hand over
            return None
        if self.agent.port == port or port in self._prepared:
            return None
        try:
            self._prepared[port] = await self._bind(port)
        except OSError as exc:
            return cannot_listen(port, exc, "nothing was changed")
        return None

    async def release(self, running: Config) -> None:
        """After a change that was not applied (refused, dry run, unchanged): close what `prepare` bound for it."""
        keep = running.settings.health.agent_port
        for port, agent in list(self._prepared.items()):
            if port != keep:
                del self._prepared[port]
                await agent.close()
                log.info("agent port %s:%d closed (the change that needed it was not applied)", AGENT_HOST, port)

    async def _move_to(self, port: int) -> None:
        """The running configuration's agent port is now `port`: use what `prepare` bound (or bind it), then close
        the old port. Fail static: when the new port cannot be had, the old listener stays."""
        if self.agent is not None and self.agent.port == port:
            return
        agent = self._prepared.pop(port, None)
        if agent is None:
            try:
                agent = await self._bind(port)
            except OSError as exc:
                log.error("%s", cannot_listen(port, exc, "HAProxy keeps the last states it was told"))
                return
        if self.agent is not None:
            await self.agent.close()
            log.info("agent port %s:%d closed", AGENT_HOST, self.agent.port)
        self.agent = agent

    # --- subsystem ----------------------------------------------------------------------------------

    async def _take(self, config: Config) -> None:
        services = appliance_checked(config)
        self.config = config
        self.check_types = {(vs.name, rs.name): vs.health_check.type for vs in services for rs in vs.real_servers}
        found = watches(config)
        rate = sum(1.0 / w.interval for w in found if w.interval > 0)  # checks a second, all watches together
        count = worker_count(config.settings.health.workers, rate=rate)
        if count == 1:  # in the controller itself, as before there were workers
            if self.pool is not None:
                await self.pool.close()
                self.pool = None
            self.checker.replace(found)
            return
        self.checker.replace([])
        if self.pool is None:
            self.pool = WorkerPool(self._push)
        self.pool.replace(found, count)

    async def start(self, config: Config) -> None:
        await self.listen(config)  # the appliance listened already, before its engines started
        await self._take(config)
        checked = len(self.checker.watches) + (len(self.pool.seen) if self.pool else 0)
        if checked:
            where = f"{len(self.pool.workers)} check workers" if self.pool else "the controller"
            log.info("health checks: %d real servers checked by the appliance (in %s)", checked, where)

    async def applied(self, config: Config) -> None:
        """A new configuration: the agent port follows it; changed watches restart, unchanged ones keep their
        state (Checker.replace)."""
        await self._move_to(config.settings.health.agent_port)
        await self.release(config)
        await self._take(config)

    async def _stop_checks(self) -> None:
        await self.checker.close()
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    async def stop(self) -> None:
        """The watches stop (and their workers); the agent port stays held until `close` (after the engines
        stopped: HAProxy asks it until then, and nobody else may answer)."""
        await self._stop_checks()

    async def close(self) -> None:
        """Stop the watches and close every agent port (idempotent)."""
        await self._stop_checks()
        for agent in [self.agent, *self._prepared.values()]:
            if agent is not None:
                await agent.close()
        self.agent = None
        self._prepared = {}

    # --- results ------------------------------------------------------------------------------------

    async def _changed(self, watch: Watch) -> None:
        await self._push(watch.key, watch.up)

    async def _push(self, key: tuple[str, str], up: bool) -> None:
        """Push a change of state at once (runtime API); the agent's next answer says the same."""
        if self.admin_socket is None:
            return
        service, server = key
        command = f"set server {service}/{server} agent {'up' if up else 'down'}"
        try:
            reply = await asyncio.to_thread(RuntimeAPI(self.admin_socket, timeout=2.0).command, command)
        except (RuntimeAPIError, OSError) as exc:
            reply = str(exc)
        if reply.strip():
            log.info("could not push %r (%s); HAProxy learns it from the agent port", command, reply.strip())

    def check_results(self) -> dict[tuple[str, str], dict]:
        """The last result of every watched real server, for `pacslb status` (safe to call from a thread)."""
        results: dict[tuple[str, str], dict] = {}
        known: list[tuple[tuple[str, str], Watch | Seen]] = list(self.checker.watches.items())
        if self.pool is not None:
            known += list(self.pool.seen.items())
        for key, watch in known:
            results[key] = {
                "type": self.check_types.get(key),
                "up": watch.up if watch.decided else None,
                "reason": watch.last.reason if watch.last else None,
                "changed_at": watch.changed_at,
            }
        return results

    def workers(self) -> list[dict]:
        """The check workers (none when the checks run in the controller): PID, real servers, restarts."""
        return self.pool.status() if self.pool is not None else []
