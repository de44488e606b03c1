"""The health-check service: the appliance runs the checks HAProxy cannot, and tells HAProxy the results.

For every Layer 7 and backend-only virtual service whose health check is dicom-echo, hl7, amqp or
external, one watch per real server runs in the controller (runner.Checker: interval, timeout, rise,
fall; the check port is health_check.port or the real server's port). HAProxy learns the results
through its agent-check protocol: each such server line carries

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

Until a watch has seen `rise` passes or `fall` failures (after a controller restart, or for a new
server) it answers nothing, and HAProxy keeps the state it has.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

from ..engines.haproxy.runtime import RuntimeAPI, RuntimeAPIError
from ..model.config import APPLIANCE_CHECK_TYPES, Config, Mode, VirtualService
from .agent_server import AgentServer
from .base import CheckContext, Target
from .probes import probe_for
from .runner import Checker, Watch

log = logging.getLogger("pacslb.health")

AGENT_HOST = "127.0.0.1"
MAX_REASON = 200  # HAProxy shows the description in `show stat` and its log; keep it one short line
_UNSAFE = re.compile(r"[\x00-\x1f\x7f#]")


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


def agent_reply(watch: Watch | None) -> str:
    """What HAProxy is told about one server: '' (nothing known yet), 'up', or 'down #reason'. Pure."""
    if watch is None or not watch.decided:
        return ""
    if watch.up:
        return "up"
    return "down #" + reason_text(watch.last.reason if watch.last else "check failed")


class HealthService:
    """A subsystem of the appliance: watches, the agent port, and results for `pacslb status`. `admin_socket` is
    HAProxy's stats socket, where state changes are pushed at once (None: only through the agent port)."""

    name = "health checks"

    def __init__(self, admin_socket: Path | str | None) -> None:
        self.admin_socket = str(admin_socket) if admin_socket is not None else None
        self.checker = Checker(self._changed)
        self.agent: AgentServer | None = None
        self.config: Config | None = None
        self.check_types: dict[tuple[str, str], str] = {}

    # --- the agent port -----------------------------------------------------------------------------

    def answer(self, request: str) -> str:
        """Answer one agent check: `request` is '<service>/<real server>'."""
        service, _, server = request.strip().partition("/")
        return agent_reply(self.checker.watches.get((service, server)))

    async def _listen(self, port: int | None) -> None:
        """Listen on `port` (None: not needed); raises OSError when it cannot."""
        if self.agent is not None and (port is None or self.agent.port != port):
            await self.agent.close()
            log.info("agent port %s:%d closed", AGENT_HOST, self.agent.port)
            self.agent = None
        if port is not None and self.agent is None:
            agent = AgentServer(self.answer, AGENT_HOST, port)
            await agent.start()
            self.agent = agent
            log.info("health-check results served to HAProxy on %s:%d (agent-check)", AGENT_HOST, port)

    # --- subsystem ----------------------------------------------------------------------------------

    async def _take(self, config: Config) -> None:
        services = appliance_checked(config)
        await self._listen(config.settings.health.agent_port if services else None)
        self.config = config
        self.check_types = {(vs.name, rs.name): vs.health_check.type for vs in services for rs in vs.real_servers}
        self.checker.replace(watches(config))

    async def start(self, config: Config) -> None:
        from ..serving import SubsystemError

        try:
            await self._take(config)
        except OSError as exc:
            raise SubsystemError(
                f"settings.health.agent_port: cannot listen on {AGENT_HOST}:{config.settings.health.agent_port} "
                f"({exc.strerror or exc}): choose a free port"
            ) from None
        if self.checker.watches:
            log.info("health checks: %d real servers checked by the appliance", len(self.checker.watches))

    async def applied(self, config: Config) -> None:
        """A new configuration: changed watches restart, unchanged ones keep their state (Checker.replace)."""
        try:
            await self._take(config)
        except OSError as exc:
            log.error(
                "settings.health.agent_port: cannot listen on %s:%d (%s): HAProxy keeps the last states it was told; "
                "choose a free port",
                AGENT_HOST,
                config.settings.health.agent_port,
                exc.strerror or exc,
            )
            self.config = config
            self.checker.replace(watches(config))

    async def stop(self) -> None:
        await self.checker.close()
        if self.agent is not None:
            await self.agent.close()
            self.agent = None

    # --- results ------------------------------------------------------------------------------------

    async def _changed(self, watch: Watch) -> None:
        """Push the change at once (runtime API); the agent's next answer says the same."""
        if self.admin_socket is None:
            return
        service, server = watch.key
        command = f"set server {service}/{server} agent {'up' if watch.up else 'down'}"
        try:
            reply = await asyncio.to_thread(RuntimeAPI(self.admin_socket, timeout=2.0).command, command)
        except (RuntimeAPIError, OSError) as exc:
            reply = str(exc)
        if reply.strip():
            log.info("could not push %r (%s); HAProxy learns it from the agent port", command, reply.strip())

    def check_results(self) -> dict[tuple[str, str], dict]:
        """The last result of every watched real server, for `pacslb status` (safe to call from a thread)."""
        results: dict[tuple[str, str], dict] = {}
        for key, watch in list(self.checker.watches.items()):
            results[key] = {
                "type": self.check_types.get(key),
                "up": watch.up if watch.decided else None,
                "reason": watch.last.reason if watch.last else None,
                "changed_at": watch.changed_at,
            }
        return results
