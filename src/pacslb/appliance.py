"""The composition root: the one place that builds the appliance and wires its parts by narrow interfaces.

    engines      HAProxy -> nftables -> keepalived (the start and commit order of every change; the stop order
                 is the reverse: keepalived hands the floating IPs over first)
    changes      the change front door (change/service.py) over those engines, under one change gate
    subsystems   health checks, Layer 4 checks, the HA pair, the metrics sampler, the management API and
                 the WebUI, side by side; each gets only what it uses
    controller   its API on a Unix socket (controller/api.py), SIGHUP (apply the file again), SIGTERM/SIGINT

Adding an engine: a package under engines/ with the contract of engines/contract.py, and one line in
`Appliance.__init__` below. Startup, in one direction:

    settle pending revisions -> choose what to run -> listen on the agent port (health checks)
    -> start (or adopt) every engine it needs
    -> record it -> subsystems -> controller API -> supervise every engine until asked to stop

A controller killed with SIGKILL leaves the engines serving (each runs in a session of its own); the next
controller adopts them instead of starting second copies (fail static).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any, Protocol

from . import statedir
from .alerts.certificates import watched as watched_certificates
from .alerts.service import AlertService
from .alerts_wiring import AlertWiring
from .alerts_wiring import look as alert_look
from .change.audit import ChangeAudit
from .change.runner import Checkpoint, no_checkpoint
from .change.service import Changes, Running
from .cluster.announce import Facts, serving
from .cluster.established import established
from .cluster.live import ClusterSection
from .cluster.routing import Routing
from .cluster.sessions import summary as session_summary
from .cluster.state import ClusterState
from .controller.api import ApiServer, serve
from .controller.observe import observe
from .controller.status import ApplianceStatus, ControllerStatus, EngineStatus
from .engines.addresses.engine import AddressesEngine
from .engines.bird.engine import BirdEngine
from .engines.contract import Engine, EngineError
from .engines.etcd.engine import EtcdEngine
from .engines.haproxy import process as haproxy_process
from .engines.haproxy.engine import HAProxyEngine, Renderer, render_haproxy
from .engines.keepalived.engine import KeepalivedEngine
from .engines.nftables.engine import NftablesEngine
from .engines.powerdns.engine import PowerDNSEngine
from .engines.powerdns.status import gslb_status
from .engines.tproxy.engine import TproxyEngine
from .engines.waf.engine import WafEngine
from .ha.roles import Roles
from .health.gslb import GslbChecks
from .health.layer4 import Layer4Checks
from .health.service import HealthService
from .model import Config
from .paths import StatePaths
from .serving import SubsystemError
from .store import StoreError

log = logging.getLogger("pacslb.controller")

MAX_CONTROLLER_SOCKET_PATH = 107  # sun_path holds 108 bytes with the final NUL


class Subsystem(Protocol):
    """A part that runs beside the engines: started after them, told of every applied configuration,
    stopped before them. One that cannot start raises SubsystemError; `applied` failures are logged."""

    name: str

    async def start(self, config: Config) -> None: ...

    async def applied(self, config: Config) -> None: ...

    async def stop(self) -> None: ...


class Facade:
    """What the management API, the WebUI and the metrics sampler see of the appliance: the change front
    door, the state directory, the running model, its live status and health. Nothing else."""

    def __init__(self, appliance: "Appliance") -> None:
        self._appliance = appliance
        self.paths = appliance.paths
        self.changes = appliance.changes
        self.alerts = appliance.alerts

    @property
    def config(self) -> Config:
        return self.changes.config

    @property
    def base_dir(self) -> Path:
        return self.changes.base_dir

    def status(self) -> ApplianceStatus:
        return self._appliance.status()

    def healthy(self) -> tuple[bool, str]:
        return self._appliance.healthy()

    def gslb_status(self) -> dict:
        return self._appliance.gslb_status()

    def cluster_routing(self) -> dict:
        """What this cluster node announces and withholds (with reasons), drained or not, the connections still
        established on it, BGP and BFD sessions."""
        return self._appliance.cluster_routing()

    async def cluster_drain(self, drained: bool) -> dict:
        """Drain this cluster node (withdraw every VIP; kept across restarts) or return it; the routing status after."""
        return await self._appliance.routing.set_drained(drained)

    @property
    def cluster(self) -> Any:
        """The cluster's state (cluster/state.py) when the configuration has a `cluster` section, else None."""
        return self._appliance.cluster if self.config.cluster is not None else None

    @property
    def ha(self) -> Any:
        """The HA pair (ha/pair.py) when the configuration has an `ha` section, else None (the WebUI's /ha)."""
        return self._appliance.ha


class Appliance:
    def __init__(
        self,
        paths: StatePaths,
        config_file: Path,
        config: Config,
        haproxy_binary: str = haproxy_process.DEFAULT_BINARY,
        renderer: Renderer = render_haproxy,
        supervise_interval: float = 0.5,
        checkpoint: Checkpoint = no_checkpoint,
    ) -> None:
        self.paths = paths
        self.started_at = time.time()
        self.gate = asyncio.Lock()  # one change, engine restart or certificate swap at a time
        config_file = config_file.resolve()
        self.running = Running(config, config_file.parent, config_file)
        self.haproxy = HAProxyEngine(paths, self.gate, haproxy_binary, renderer, supervise_interval)
        self.nftables = NftablesEngine(paths)
        self.keepalived = KeepalivedEngine(paths, self.gate, on_event=self._keepalived_event)
        self.powerdns = PowerDNSEngine(paths, self.gate)  # GSLB (issue 19): wanted only with a gslb section
        self.addresses = AddressesEngine(paths)  # a single node's VIP addresses (settings.network.interface)
        # the engines, one line each, in the order they start and commit (HAProxy first: it checks the most, and a
        # configuration it refuses at startup then touches nothing); keepalived last: floating IPs follow services.
        # Before them all, a single node's VIP addresses: HAProxy binds them (none without an interface named);
        # then the WAF tier (issue 18): a policy is served by Apache before HAProxy sends requests to it
        self.waf = WafEngine(paths.root, self.gate)
        self.tproxy = TproxyEngine(paths)  # TPROXY's host side (issue 15): before HAProxy, whose replies it routes
        self.bird = BirdEngine(paths, self.gate)  # a cluster node's routes (issue 20): after the services it announces
        self.etcd = EtcdEngine(paths, self.gate)  # a cluster node's etcd member (issue 20): first up, last down
        self.engines: list[Engine] = [
            self.etcd, self.addresses, self.tproxy, self.waf, self.haproxy, self.nftables, self.powerdns, self.bird,
            self.keepalived,
        ]  # fmt: skip
        self.roles = Roles(paths.root, lambda: self.running.config.ha)
        # the health service holds the agent port HAProxy asks: a change that moves it is refused unless the
        # new port is listened on before any engine commits (a precondition of the change)
        # and a change of the `cluster` section that a running node cannot take (another cluster or node, the section
        # added or removed) is refused first, before anything is taken or written to etcd (cluster/live.py)
        self.health = HealthService(paths.haproxy_admin_socket)
        # alerts hear of the appliance through callbacks wired here: its looks at the status, the change audit,
        # the HA pair's events, the certificates the configuration names (no part imports alerts)
        self.alerts = AlertService(look=lambda: alert_look(self.status(), self.engines), certificate_files=self._certificates)
        self.alert_wiring = AlertWiring(self.alerts, ChangeAudit(paths.audit_log))
        self.changes = Changes(paths, self.running, self.engines, self.gate, guard=self.roles.guard,
                               notify=self._notify, audit=self.alert_wiring.audit, checkpoint=checkpoint,
                               certificates=self.haproxy, preconditions=[ClusterSection(), self.health],
                               publish=self._publish)  # fmt: skip
        # a cluster node (issue 20): changes go through etcd, every node applies each revision (cluster/state.py)
        self.cluster = ClusterState(paths, self.changes, self.healthy, self._drain_routing, self._announced_vips,
                                    on_partition=lambda: self.routing.wake(), member_engine=self.etcd,
                                    sessions=lambda: session_summary(self.bird.observe().detail))  # fmt: skip
        self.layer4_checks = Layer4Checks(self.nftables.health_changed)
        self.gslb_checks = GslbChecks(self.powerdns.health_changed, self._local_services_up)
        # a cluster node announces the VIPs it can serve (cluster/routing.py): re-evaluated on HAProxy's death and
        # return, on drain, on every applied configuration, and every half second for the real servers' states
        self.routing = Routing(paths.cluster_drained, self._routing_facts, self.bird.announce, self.bird.refresh_sessions,
                               keep_on_stop=lambda: self._leave_engines)  # fmt: skip
        self.haproxy.watchers.append(self.routing.haproxy_event)
        self.facade = Facade(self)
        self.ha: Any = None  # the HA pair, when the running configuration has an `ha` section (built in run)
        self.management: Any = None
        self.subsystems: list[Subsystem] = []
        self._stop = asyncio.Event()
        self._stop_reason = ""
        self._leave_engines = False  # a hand-over (SIGUSR2, a package upgrade): the engines keep serving
        self._tasks: list[asyncio.Task] = []

    @property
    def config(self) -> Config:
        return self.running.config

    # --- the subsystems ----------------------------------------------------------------------------

    def _build_subsystems(self, config: Config) -> list[Subsystem]:
        """In start order: health checks first (others report their results), then the HA pair, the metrics
        sampler, and last the management API and WebUI (it serves what the others report)."""
        from .web.history import Sampler

        built: list[Subsystem] = [self.health, self.alerts]
        if config.cluster is not None:
            built.append(self.cluster)
        if config.ha is not None:
            from .ha.pair import HAPair

            self.ha = HAPair(self.changes, self.keepalived, self.roles, on_event=self.alert_wiring.ha_event)
            built.append(self.ha)
        built.append(self.routing)  # does nothing without a cluster section
        built.append(Sampler(self.facade))
        if config.settings.management.enabled:
            from .api.server import ManagementServer
            from .web import mount_web

            self.management = ManagementServer(self.facade, extend=mount_web)
            built.append(self.management)
        else:
            log.info("the management API is disabled (settings.management.enabled: false)")
        return built

    async def _publish(self, old: Config, new: Config, origin: Any, kind: str, check: Any) -> Any:
        return await self.cluster.publish(old, new, origin, kind, check)

    async def _drain_routing(self, drained: bool) -> None:
        """The seam between the cluster's state and its routing (docs/cluster.md, "Drain"): this node's drain key
        in etcd changed; the routing withdraws (or announces again) this node's VIPs, as `POST /cluster/drain` does."""
        await self.routing.set_drained(drained)

    def _announced_vips(self) -> list[str] | None:
        """The VIPs this node announces, as its BIRD engine reports them in its state (`announced`)."""
        announced = self.bird.observe().detail.get("announced")
        return [str(v) for v in announced] if announced is not None else None

    def _keepalived_event(self, state: str, reason: str) -> None:
        if self.ha is not None:
            self.ha.event(state, reason)

    def _certificates(self, config: Config) -> list[tuple[str, Path]]:
        """The certificates alerts watch for expiry (the management one: configured, or the state directory's)."""
        return watched_certificates(config, self.running.base_dir, self.paths.management_certificate)

    async def _notify(self, config: Config) -> None:
        """Every part hears of a configuration once it is applied (after an apply, a runtime change, a rollback)."""
        self.layer4_checks.replace(config)
        self.gslb_checks.replace(config)
        for subsystem in self.subsystems:
            try:
                await subsystem.applied(config)
            except Exception:
                log.exception("%s could not take the new configuration", subsystem.name)

    # --- observing -----------------------------------------------------------------------------------

    def engine_status(self) -> EngineStatus:
        state = self.haproxy.observe()
        return EngineStatus(running=state.running, master_pid=state.pid, workers=state.detail.get("workers", []),
                            adopted=bool(state.detail.get("adopted")), restarts=state.restarts,
                            reloads=state.detail.get("reloads", 0), error=state.error)  # fmt: skip

    def status(self) -> ApplianceStatus:
        """The live state (blocking: it asks HAProxy)."""
        controller = ControllerStatus(pid=os.getpid(), state_dir=str(self.paths.root), config_file=str(self.running.config_file),
                                      started_at=self.started_at, check_workers=self.health.workers())  # fmt: skip
        return observe(self.paths, self.config, self.engine_status(), controller, self.check_results())

    def check_results(self) -> dict[tuple[str, str], dict]:
        """Results of the checks the appliance runs itself (Layer 7 agent checks and Layer 4), by (service, real server)."""
        results: dict[tuple[str, str], dict] = {}
        for source in (self.layer4_checks, self.health):
            try:
                results.update(source.check_results())
            except RuntimeError:  # the watches changed while being read (another thread): next time
                pass
        return results

    async def _local_services_up(self) -> dict[str, bool]:
        """Which local virtual services are up (a GSLB site that is this appliance follows its service)."""
        status = await asyncio.to_thread(self.status)
        return {vs.name: vs.state.value == "UP" for vs in status.virtual_services}

    def _routing_facts(self, config: Config, drained: bool) -> Facts:
        """What cluster/announce.py decides from (blocking: it asks HAProxy)."""
        running, reason = self.haproxy.serves()
        stopping = self._stop.is_set()
        return Facts(haproxy_running=running, haproxy_reason="" if running else reason,
                     serving=serving(config, self.status()),
                     drained=drained, controller_healthy=not stopping, partitioned=self.cluster.partitioned or "",
                     controller_reason=f"stopping ({self._stop_reason})" if stopping else "")  # fmt: skip

    def cluster_routing(self) -> dict:
        state = self.bird.observe()
        sessions = {key: state.detail.get(key, []) for key in ("bgp", "bfd")}
        # the connections HAProxy still holds: a drained node is safe to stop once they are gone
        held = established(self.config, self.status())
        return {**self.routing.status(), "established": held, **sessions, "bird": {"running": state.running, "pid": state.pid,
                "restarts": state.restarts, "error": state.error}}  # fmt: skip

    def gslb_status(self) -> dict:
        """Per GSLB name, which sites are answered to which client networks and why; per site its health."""
        return gslb_status(self.config, self.powerdns, self.gslb_checks)

    def healthy(self) -> tuple[bool, str]:
        if self._stop.is_set():
            return False, f"stopping ({self._stop_reason})"
        return self.haproxy.serves()

    def request_stop(self, reason: str) -> None:
        if not self._stop.is_set():
            self._stop_reason = reason
            log.info("stopping (%s)", reason)
            self._stop.set()

    def hand_over(self) -> None:
        """Stop the controller but leave every engine serving, for the next controller to adopt (a package
        upgrade: `pacslb stop --leave-engines`, SIGUSR2). Fail static, on purpose."""
        self._leave_engines = True
        self.request_stop("hand-over: the engines keep serving for the next controller")

    # --- running -------------------------------------------------------------------------------------

    async def run(self, config_text: str | None = None) -> int:
        """Run until asked to stop; return the exit status (0 after a requested stop)."""
        if untrusted := statedir.problem(self.paths.root):  # its stores and sockets would be another user's
            log.error("cannot run on %s: %s", self.paths.root, untrusted)
            return 1
        problems = haproxy_process.socket_path_problems(self.paths)
        if len(str(self.paths.controller_socket)) > MAX_CONTROLLER_SOCKET_PATH:
            problems.append(f"{self.paths.controller_socket} is too long for a Unix socket: choose a shorter state directory")
        if problems:
            log.error("cannot run on %s:\n  %s", self.paths.root, "\n  ".join(problems))
            return 2
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, signal.Signals(sig).name)
        loop.add_signal_handler(signal.SIGUSR2, self.hand_over)
        self.paths.haproxy_dir.mkdir(parents=True, exist_ok=True)
        try:
            # revisions: settle what a killed controller left pending; run the current revision, or the
            # configuration file when it changed since it was last read (change/service.py)
            config_text = await asyncio.to_thread(self.changes.startup, config_text, self.haproxy.serves_state_dir())
        except StoreError as exc:
            log.error("the revision store cannot be used: %s", exc)
            return 1
        config, base_dir = self.running.config, self.running.base_dir
        try:
            # before the engines: HAProxy asks the agent port as soon as it runs, and nobody else may answer
            await self.health.listen(config)
        except SubsystemError as exc:
            log.error("%s", exc)
            await asyncio.to_thread(self.changes.startup_failed, str(exc))
            return 2
        for engine in self.engines:
            try:
                await engine.start(config, base_dir)
            except EngineError as exc:
                log.error("%s", exc)
                await asyncio.to_thread(self.changes.startup_failed, str(exc))
                await self._shutdown(None)
                return 2 if exc.refused else 1
        await asyncio.to_thread(self.haproxy.converge)  # runtime states and weights as the model says
        try:
            await asyncio.to_thread(self.changes.started, config_text)
        except (StoreError, OSError) as exc:
            log.error("the revision store cannot be written: %s", exc)
        self.layer4_checks.replace(config)
        self.gslb_checks.replace(config)
        try:
            await self._start_subsystems(config)
        except SubsystemError as exc:
            log.error("%s", exc)
            await self._shutdown(None)
            return 2
        try:
            api = await serve(self, self.paths.controller_socket, self.changes, ha=self.ha, gslb=self.gslb_status,
                              alerts=self.alerts, cluster=self.cluster if config.cluster is not None else None,
                              routing=(self.cluster_routing, self.routing.set_drained))  # fmt: skip
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - uvicorn exits (SystemExit) or raises anything on some startup failures
            log.error("the API cannot listen on %s: %s", self.paths.controller_socket, exc)
            await self._shutdown(None)
            return 1
        loop.add_signal_handler(signal.SIGHUP, lambda: self._tasks.append(loop.create_task(self.changes.apply_file())))
        self._tasks += [loop.create_task(engine.supervise()) for engine in self.engines]
        log.info("controller ready (PID %d): API on %s", os.getpid(), self.paths.controller_socket)
        try:
            await self._stop.wait()
        finally:
            await self._shutdown(api)
        return 0

    async def _start_subsystems(self, config: Config) -> None:
        self.subsystems = []
        for subsystem in self._build_subsystems(config):
            await subsystem.start(config)
            self.subsystems.append(subsystem)  # only started ones are stopped
            log.info("%s started", subsystem.name)

    async def _shutdown(self, api: ApiServer | None) -> None:
        for subsystem in reversed(self.subsystems):
            try:
                await subsystem.stop()
            except Exception:
                log.exception("%s did not stop cleanly", subsystem.name)
        self.subsystems = []
        await self.layer4_checks.close()
        await self.gslb_checks.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for engine in reversed(self.engines):
            if self._leave_engines:
                log.info("%s keeps serving (hand-over)", engine.name)
                if engine is self.haproxy:  # the file a runtime change left due: the next controller adopts it
                    await asyncio.to_thread(self.haproxy.flush_file)
                continue
            try:
                await engine.stop()
            except Exception:
                log.exception("%s did not stop cleanly", engine.name)
        await self.health.close()  # the agent port, held from before the engines started until they are gone
        if api is not None:
            await api.close()
        log.info("controller stopped")
