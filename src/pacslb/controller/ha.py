"""The HA pair subsystem: keepalived (floating IPs), the peer link (configuration sync), the VRRP record.

Built when the configuration has an `ha` section (controller/subsystems.py FACTORIES). It

- renders keepalived.conf (engines/keepalived), checks it with `keepalived -t`, adopts the keepalived
  that already runs it or starts one, and starts it again when it dies (like HAProxy);
- reads the VRRP state changes notify.sh appends, and keeps them with their time and reason;
- serves the peer link: HTTPS on `ha.address`:`ha.sync.port`, client certificates both ways, the peer's
  certificate pinned (controller/ha_sync.py);
- asks the peer for its state every `ha.sync.interval` (master, revision, last sync), and on the
  primary sends the running configuration whenever the peer runs another one, and at once after every
  applied revision (`applied`); a promoted secondary neither takes nor sends configurations;
- on the secondary refuses direct changes (`guard`, called by controller/changes.py) unless promoted;
- watches for split brain (both nodes master), logs it and applies `ha.split_brain`;
- on stop ends keepalived with SIGTERM: a master sends a priority-0 advert, so the peer takes over at once.

Adding or removing the `ha` section takes a restart of the appliance (`pacslb stop`, `pacslb up`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..engines.keepalived import process as keepalived
from ..engines.keepalived.render import SPLIT_BRAIN_BONUS, KeepalivedPaths, RenderError, render, render_scripts
from ..model.checks import resolve
from ..model.config import Config
from . import files
from . import ha_sync
from .inloop import InLoopServer
from .subsystems import SubsystemError

if TYPE_CHECKING:
    from .appliance import Controller

log = logging.getLogger("pacslb.ha")
logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per peer-link request would drown the log

EVENT_POLL = 0.1
SUPERVISE_INTERVAL = 0.5
PUSH_TIMEOUT = 60.0
SYNC_KIND = "sync"
MAX_TRANSITIONS = 200


def factory(controller: "Controller") -> "HASubsystem | None":
    if controller.config.ha is None:
        return None
    return HASubsystem(controller)


@dataclass
class Event:
    at: float
    state: str
    reason: str
    priority: int | None = None


class HASubsystem:
    name = "HA pair (keepalived, peer link)"

    def __init__(self, controller: "Controller") -> None:
        self.c = controller
        self.paths = KeepalivedPaths(controller.paths.root)
        self.state_dir = controller.paths.root / "ha"
        self.config: Config = controller.config
        self.pid: int | None = None
        self.restarts = 0
        self.error: str | None = None
        self.vrrp_state = "UNKNOWN"
        self.vrrp_since: float | None = None
        self.priority: int | None = None
        self.events: deque[Event] = deque(maxlen=MAX_TRANSITIONS)
        self._offset = 0
        self.peer: dict[str, Any] | None = None  # the peer's last answer
        self.peer_seen: float | None = None
        self.peer_error: str | None = "not asked yet"
        self.split_brain: dict[str, Any] | None = None
        self.last_push: dict[str, Any] | None = None
        self.bonus = 0
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task] = []
        self._server: InLoopServer | None = None
        self._lock = asyncio.Lock()  # one keepalived start, reload or stop at a time
        self._client_ctx: ssl.SSLContext | None = None

    # --- node-local state files -----------------------------------------------------------------------

    @property
    def ha(self):
        return self.config.ha

    @property
    def promoted(self) -> bool:
        return (self.state_dir / "promoted").exists()

    def set_promoted(self, value: bool) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        marker = self.state_dir / "promoted"
        if value:
            files.atomic_write(marker, f"{time.time()}\n")
        else:
            marker.unlink(missing_ok=True)

    @property
    def pushes(self) -> bool:
        """This node sends its configuration to the peer: the primary."""
        return self.ha.role == "primary"

    @property
    def takes_pushes(self) -> bool:
        """This node applies what its peer sends: a secondary that was not promoted."""
        return self.ha.role == "secondary" and not self.promoted

    def synced(self) -> dict[str, Any] | None:
        text = files.read_text(self.state_dir / "synced.json")
        return json.loads(text) if text else None

    def _record_synced(self, record: dict[str, Any]) -> None:
        files.atomic_write(self.state_dir / "synced.json", json.dumps(record) + "\n")

    # --- the refusal on the secondary (controller/changes.py) -----------------------------------------

    def guard(self, kind: str) -> str | None:
        """Why this node refuses a change of `kind`, or None."""
        if kind == SYNC_KIND or self.ha is None or self.ha.role != "secondary" or self.promoted:
            return None
        return (
            f"this node is the secondary of an HA pair: make changes on the primary {self.ha.peer_address}, "
            "or promote this node with `pacslb ha promote`"
        )

    # --- keepalived ---------------------------------------------------------------------------------------

    def _prepare(self, config: Config) -> tuple[str, Path]:
        """Render and check keepalived.conf in a temporary file (blocking)."""
        try:
            text = render(config, self.paths)
        except RenderError as exc:
            raise SubsystemError(f"keepalived.conf cannot be rendered: {exc}") from None
        keepalived.write_scripts(render_scripts(self.paths))
        self.paths.dir.mkdir(parents=True, exist_ok=True)
        temp = files.temp_file(self.paths.dir, ".keepalived.conf.", text)
        result = keepalived.check(temp)
        if not result.ok:
            temp.unlink(missing_ok=True)
            raise SubsystemError(f"keepalived refuses the rendered keepalived.conf (keepalived -t):\n  {result.output}")
        return text, temp

    def _start_keepalived(self, config: Config) -> None:
        text, temp = self._prepare(config)
        running = keepalived.adopt(self.paths)
        same = files.read_text(self.paths.config) == text
        files.replace(temp, self.paths.config)
        if running is not None:
            # the split-brain bonus of a keepalived that keeps running stays as it was
            bonus = (files.read_text(self.paths.bonus) or "0").strip()
            self.bonus = int(bonus) if bonus.isdigit() else 0
            self.pid = running
            if not same:
                keepalived.reload(running)
                log.info("adopted keepalived (PID %d) and reloaded it on the new keepalived.conf", running)
            else:
                log.info("adopted keepalived (PID %d): it runs this keepalived.conf", running)
            return
        # a keepalived that starts afresh starts without the bonus: it holds no floating IP yet
        files.atomic_write(self.paths.bonus, "0\n")
        self.bonus = 0
        self.pid = keepalived.start(self.paths)
        log.info("keepalived started (PID %d): VRRPv3, %s, priority %d, %s", self.pid, self.ha.transport,
                 self.ha.effective_priority, "preempt" if self.ha.preempt else "nopreempt")  # fmt: skip

    def _reload_keepalived(self, config: Config) -> None:
        text, temp = self._prepare(config)
        if files.read_text(self.paths.config) == text:
            temp.unlink(missing_ok=True)
            return
        files.replace(temp, self.paths.config)
        if self.pid is not None and keepalived.alive(self.pid):
            keepalived.reload(self.pid)
            log.info("keepalived reloaded (floating IPs: %s)", ", ".join(ip.address for ip in _ips(config)))

    async def _supervise(self) -> None:
        backoff = 1.0
        while not self._stopping:
            await asyncio.sleep(SUPERVISE_INTERVAL)
            async with self._lock:
                if self._stopping or (self.pid is not None and keepalived.alive(self.pid)):
                    continue
                log.error("keepalived (PID %s) died: starting it again", self.pid)
                self._event("UNKNOWN", "keepalived died; the controller starts it again")
                try:
                    await asyncio.to_thread(self._start_keepalived, self.config)
                    self.restarts += 1
                    self.error = None
                    backoff = 1.0
                except (SubsystemError, keepalived.KeepalivedError, OSError) as exc:
                    self.error = f"keepalived could not be started again: {exc}"
                    log.error("%s; next attempt in %gs", self.error, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 30.0)

    # --- VRRP state ---------------------------------------------------------------------------------------

    def _event(self, state: str, reason: str, priority: int | None = None, at: float | None = None) -> None:
        self.events.append(Event(at or time.time(), state, reason, priority))

    def _reason(self, old: str, new: str) -> str:
        if new == "MASTER":
            return ("the peer stopped advertising or sent priority 0 (its appliance stopped or died, or the peer "
                    "link is cut): this node took the floating IPs and sent gratuitous ARPs")  # fmt: skip
        if new == "BACKUP" and old == "MASTER":
            return "a peer of higher priority advertises (preemption or split brain resolved): floating IPs released"
        if new == "BACKUP" and old == "UNKNOWN":
            return "keepalived started: both nodes start as backup, the one that hears no master takes over"
        if new == "BACKUP":
            return f"left {old}: back in service as backup"
        if new == "FAULT":
            return "HAProxy is not running (tracked) or the interface is down: floating IPs released"
        if new == "STOP":
            return "keepalived stopped"
        return new.lower()

    async def _read_events(self) -> None:
        while not self._stopping:
            try:
                found, self._offset = await asyncio.to_thread(keepalived.read_events, self.paths.events, self._offset)
            except OSError as exc:
                log.warning("cannot read %s: %s", self.paths.events, exc)
                found = []
            for t in found:
                if t.state == self.vrrp_state:
                    continue
                reason = self._reason(self.vrrp_state, t.state)
                log.warning("VRRP: %s -> %s (%s)", self.vrrp_state, t.state, reason)
                self._event(t.state, reason, t.priority, t.at)
                self.vrrp_state, self.vrrp_since, self.priority = t.state, t.at, t.priority
                self._wake.set()
            await asyncio.sleep(EVENT_POLL)

    # --- the peer link ------------------------------------------------------------------------------------

    def local_state(self) -> dict[str, Any]:
        """What this node tells its peer (and `pacslb ha status`)."""
        current = self.c.changes.store.current_id() if hasattr(self.c, "changes") else None
        return {
            "role": self.ha.role,
            "address": self.ha.address,
            "promoted": self.promoted,
            "vrrp_state": self.vrrp_state,
            "vrrp_since": self.vrrp_since,
            "priority": self.priority,
            "revision": current,
            "synced_digest": ha_sync.synced_digest(self.c.config),
            "synced": self.synced(),
            "keepalived_pid": self.pid,
            "now": time.time(),
            "transitions": [[e.at, e.state] for e in list(self.events)[-50:] if e.state != "SPLIT-BRAIN"],
        }

    def _peer_url(self, path: str) -> str:
        host = self.ha.peer_address
        host = f"[{host}]" if ":" in host else host
        return f"https://{host}:{self.ha.sync.port}/ha/v1{path}"

    def _client(self, timeout: float):
        import httpx

        if self._client_ctx is None:
            peer_cert = resolve(self.ha.sync.peer_certificate, self.c.base_dir)
            self._client_ctx = ha_sync.client_context(self.c.paths.root, peer_cert)
        return httpx.AsyncClient(verify=self._client_ctx, timeout=timeout)

    async def _ask_peer(self) -> None:
        try:
            async with self._client(max(self.ha.sync.interval.seconds, 1.0)) as client:
                response = await client.get(self._peer_url("/state"))
            response.raise_for_status()
            peer = response.json()
        except Exception as exc:  # noqa: BLE001 - any failure means: the peer is not reachable now
            if self.peer_error is None:
                log.warning("the peer %s does not answer on the peer link: %s", self.ha.peer_address, exc)
            self.peer_error = str(exc) or type(exc).__name__
            return
        if self.peer_error is not None:
            log.info("the peer %s answers on the peer link (%s, VRRP %s)", self.ha.peer_address, peer.get("role"),
                     peer.get("vrrp_state"))  # fmt: skip
        ongoing = self.split_brain is not None and self.split_brain.get("resolved") is None
        if self.peer_seen is not None and not ongoing:
            # Were both nodes master since the last answer? A cut shorter than the sync interval (VRRP
            # settles it within a few adverts) leaves no failed ask behind, only the two nodes' transitions.
            self._split_brain_during(self.peer_seen, peer)
        self.peer, self.peer_seen, self.peer_error = peer, time.time(), None
        self._split_brain(peer)
        if self.pushes and peer.get("synced_digest") != ha_sync.synced_digest(self.c.config):
            await self._push(peer)

    def _split_brain(self, peer: dict[str, Any]) -> None:
        both = self.vrrp_state == "MASTER" and peer.get("vrrp_state") == "MASTER"
        if both and self.split_brain is None:
            rule = self.ha.split_brain
            winner = "the primary" if rule == "primary-wins" else "the node that was master before the cut"
            self.split_brain = {"since": time.time(), "rule": rule, "resolved": None}
            log.error("split brain: both nodes are master; the rule %s decides: %s keeps the floating IPs", rule, winner)
            self._event("SPLIT-BRAIN", f"both nodes master; rule {rule}: {winner} keeps the floating IPs")
        elif not both and self.split_brain is not None and self.split_brain.get("resolved") is None:
            self.split_brain["resolved"] = time.time()
            log.warning("split brain resolved: this node is %s, the peer %s", self.vrrp_state, peer.get("vrrp_state"))
            self._event(self.vrrp_state, f"split brain resolved by rule {self.ha.split_brain}")
        if self.ha.split_brain == "keep-current":
            # The bonus marks the node that held the floating IPs while the peer was seen as backup.
            if self.vrrp_state == "MASTER" and peer.get("vrrp_state") == "BACKUP":
                self._set_bonus(SPLIT_BRAIN_BONUS)
        if self.vrrp_state != "MASTER" and self.ha.split_brain == "keep-current" and not both:
            self._set_bonus(0)

    def _split_brain_during(self, since: float, peer: dict[str, Any]) -> None:
        """Both nodes were master at once while the peer link was down (VRRP may have settled it before we ask)."""
        now = time.time()
        mine = master_intervals([[e.at, e.state] for e in self.events if e.state != "SPLIT-BRAIN"], now)
        theirs = master_intervals(peer.get("transitions") or [], now)
        # A handover (one node's BACKUP and the other's MASTER written a moment apart) overlaps by a few
        # milliseconds; a split brain lasts at least the three missed adverts that make a backup take over.
        least = 2 * self.ha.advert_interval.seconds
        overlaps = [(max(a0, b0, since), min(a1, b1)) for a0, a1 in mine for b0, b1 in theirs
                    if min(a1, b1) - max(a0, b0, since) >= least]  # fmt: skip
        if not overlaps:
            return
        start, end = overlaps[0][0], overlaps[-1][1]
        rule = self.ha.split_brain
        keeper = "this node" if self.vrrp_state == "MASTER" else "the peer" if peer.get("vrrp_state") == "MASTER" else "none"
        self.split_brain = {"since": start, "rule": rule, "resolved": end if end < now - 0.01 else None, "kept_by": keeper}
        log.error("split brain: both nodes were master for %.2fs while the peer link was down; rule %s: %s keeps the "
                  "floating IPs", end - start, rule, keeper)  # fmt: skip
        self._event("SPLIT-BRAIN", f"both nodes were master for {end - start:.2f}s (peer link down); rule {rule}: "
                    f"{keeper} keeps the floating IPs", at=start)  # fmt: skip

    def _set_bonus(self, value: int) -> None:
        if value != self.bonus:
            self.bonus = value
            files.atomic_write(self.paths.bonus, f"{value}\n")

    async def _push(self, peer: dict[str, Any]) -> None:
        rev = await asyncio.to_thread(self.c.changes.store.current)
        # What the revision says, not self.c.config: a change sets the running model a moment before its
        # revision is marked applied, and the number pushed must name the configuration pushed.
        config = await asyncio.to_thread(Config.model_validate_json, rev.config_json) if rev else self.c.config
        body = {
            "revision": rev.id if rev else None,
            "author": rev.author if rev else "pacslb",
            "message": rev.message if rev else "",
            "created_at": rev.created_at if rev else time.time(),
            "from": self.ha.address,
            "config": ha_sync.synced_data(config),
            "digest": ha_sync.synced_digest(config),
        }
        started = time.time()
        try:
            async with self._client(PUSH_TIMEOUT) as client:
                response = await client.post(self._peer_url("/config"), json=body)
            try:
                answer = response.json()
            except ValueError:
                answer = {}
            if not isinstance(answer, dict) or "message" not in answer:
                answer = {"message": f"HTTP {response.status_code}: {response.text[:300]}"}
        except Exception as exc:  # noqa: BLE001
            log.error("pushing revision %s to the peer %s failed: %s", body["revision"], self.ha.peer_address, exc)
            self.last_push = {"at": started, "revision": body["revision"], "ok": False, "message": str(exc)}
            return
        ok = response.status_code == 200
        repeated = self.last_push is not None and not ok and self.last_push.get("message") == answer.get("message", "")
        self.last_push = {"at": started, "revision": body["revision"], "ok": ok,
                          "message": answer.get("message", ""), "seconds": round(time.time() - started, 3)}  # fmt: skip
        if not repeated:  # a refusal that goes on (a promoted peer) is logged once, not every interval
            (log.info if ok else log.error)("revision %s pushed to the peer %s: %s", body["revision"],
                                            self.ha.peer_address, answer.get("message"))  # fmt: skip

    async def _peer_loop(self) -> None:
        while not self._stopping:
            self._wake.clear()  # before asking: a revision applied meanwhile wakes the next round at once
            try:
                await self._ask_peer()
            except Exception:  # noqa: BLE001 - the loop must outlive any surprise
                log.exception("the peer link loop failed; it goes on")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.ha.sync.interval.seconds)

    async def receive(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """A configuration pushed by the peer: applied here as the same revision (its number kept in synced.json)."""
        if not self.takes_pushes:
            why = "it was promoted (`pacslb ha demote` undoes it)" if self.promoted else "it is the primary"
            return 409, {"outcome": "refused", "message": f"this node takes no configuration from its peer: {why}"}
        merged = ha_sync.merge_local(body.get("config") or {}, self.c.config)
        primary_rev = body.get("revision")
        result = await self.c.changes.apply(
            data=merged,
            author=str(body.get("author") or "pacslb")[:200],
            message=f"revision {primary_rev} of the primary {body.get('from')}: {body.get('message') or ''}".strip()[:2000],
            kind=SYNC_KIND,
        )
        if result.outcome.value in ("applied", "unchanged"):
            local = result.revision.id if result.revision else self.c.changes.store.current_id()
            self._record_synced({"primary_revision": primary_rev, "local_revision": local, "at": time.time(),
                                 "digest": body.get("digest")})  # fmt: skip
            log.info("revision %s of the primary applied here as local revision %s", primary_rev, local)
            return 200, {"outcome": result.outcome.value, "message": f"applied as local revision {local}",
                         "local_revision": local}  # fmt: skip
        log.error("revision %s of the primary could not be applied: %s", primary_rev, result.message)
        return 409, result.as_dict()

    async def _serve(self) -> None:
        from fastapi import Body, FastAPI
        from fastapi.responses import JSONResponse

        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

        @app.get("/ha/v1/state")
        async def state() -> dict:
            return await asyncio.to_thread(self.local_state)

        @app.post("/ha/v1/config")
        async def config(pushed: dict = Body(...)) -> JSONResponse:
            status, body = await self.receive(pushed)
            return JSONResponse(body, status_code=status)

        cert, key = ha_sync.node_files(self.c.paths.root)
        peer_cert = resolve(self.ha.sync.peer_certificate, self.c.base_dir)
        sock = ha_sync.server_socket(self.ha.address, self.ha.sync.port)
        self._server = InLoopServer(
            app, sock, timeout_graceful_shutdown=2, ssl_certfile=str(cert), ssl_keyfile=str(key),
            ssl_ca_certs=str(peer_cert), ssl_cert_reqs=ssl.CERT_REQUIRED,
        )  # fmt: skip
        await self._server.start()

    # --- the subsystem ------------------------------------------------------------------------------------

    async def start(self, config: Config) -> None:
        self.config = config
        ha = config.ha
        assert ha is not None
        ha_sync.ensure_node_certificate(self.c.paths.root, f"pacslb HA {ha.role} {ha.address}", [ha.address])
        peer_cert = resolve(ha.sync.peer_certificate, self.c.base_dir)
        try:
            ha_sync.check_pin(peer_cert, ha.sync.peer_fingerprint)
        except ha_sync.PeerLinkError as exc:
            raise SubsystemError(str(exc)) from None
        self.state_dir.mkdir(parents=True, exist_ok=True)
        events = self.paths.events
        self._offset = events.stat().st_size if events.exists() else 0
        last, _ = keepalived.read_events(events)
        try:
            async with self._lock:
                await asyncio.to_thread(self._start_keepalived, config)
        except keepalived.KeepalivedError as exc:
            raise SubsystemError(f"keepalived could not be started: {exc}") from None
        # the recorded history (it outlives controllers): the latest transitions, with their reasons
        previous = "UNKNOWN"
        for t in last[-MAX_TRANSITIONS:]:
            if t.state != previous:
                self._event(t.state, self._reason(previous, t.state), t.priority, t.at)
                previous = t.state
        if last and keepalived.adopt(self.paths) == self.pid and last[-1].state != "STOP":
            self.vrrp_state, self.vrrp_since, self.priority = last[-1].state, last[-1].at, last[-1].priority
        try:
            await self._serve()
        except (OSError, SystemExit) as exc:
            await self._stop_keepalived()
            raise SubsystemError(f"the peer link cannot listen on {ha.address}:{ha.sync.port}: {exc}") from None
        self.c.change_guard = self.guard  # type: ignore[attr-defined]
        self.c.ha = self  # type: ignore[attr-defined]
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._supervise()), loop.create_task(self._read_events()),
                       loop.create_task(self._peer_loop())]  # fmt: skip
        log.info("HA pair: %s %s, peer %s; peer link on %s:%d", ha.role, ha.address, ha.peer_address, ha.address,
                 ha.sync.port)  # fmt: skip

    async def applied(self, config: Config) -> None:
        old, self.config = self.config, config
        if config.ha is None:
            log.error("the new configuration has no `ha` section: keepalived keeps running the previous one until "
                      "the appliance restarts")  # fmt: skip
            self.config = old
            return
        if config.ha != old.ha:
            self._client_ctx = None
        async with self._lock:
            try:
                await asyncio.to_thread(self._reload_keepalived, config)
            except SubsystemError as exc:
                log.error("%s; keepalived keeps the previous file", exc)
        self._wake.set()  # push at once (in the peer loop's task, outside the change lock)

    async def _stop_keepalived(self) -> None:
        if self.pid is not None:
            pid = self.pid
            await asyncio.to_thread(keepalived.stop, pid)
            log.info("keepalived stopped (PID %d): the peer takes the floating IPs over", pid)
            self.pid = None

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        async with self._lock:
            await self._stop_keepalived()
        if self._server is not None:
            await self._server.close()
            self._server = None
        with contextlib.suppress(AttributeError):
            del self.c.change_guard
        with contextlib.suppress(AttributeError):
            del self.c.ha

    # --- status and control (controller API) --------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        ha = self.ha
        return {
            "node": self.local_state(),
            "peer": {
                "address": ha.peer_address,
                "role": ha.peer_role,
                "reachable": self.peer_error is None,
                "error": self.peer_error,
                "last_seen": self.peer_seen,
                "state": self.peer,
            },
            "keepalived": {"pid": self.pid, "restarts": self.restarts, "error": self.error},
            "split_brain": self.split_brain,
            "split_brain_rule": ha.split_brain,
            "last_push": self.last_push,
            "transitions": [asdict(e) for e in self.events],
        }

    def router(self):
        from fastapi import APIRouter

        from . import API_PREFIX

        router = APIRouter(prefix=f"{API_PREFIX}/ha")

        @router.get("")
        async def status() -> dict:
            return await asyncio.to_thread(self.status)

        @router.post("/promote")
        async def promote() -> dict:
            if self.ha.role == "primary":
                return {"ok": True, "message": "this node is the primary: it takes changes already"}
            self.set_promoted(True)
            log.warning("promoted: this secondary takes changes and no longer takes the primary's configuration "
                        "(it does not push its own either)")  # fmt: skip
            self._event(self.vrrp_state, "promoted with `pacslb ha promote`")
            return {"ok": True, "message": "promoted: this node takes changes now, and no configuration from its peer"}

        @router.post("/demote")
        async def demote() -> dict:
            if self.ha.role == "primary":
                return {"ok": False, "message": "this node is the primary by its configuration (ha.role): nothing to demote"}
            self.set_promoted(False)
            self._event(self.vrrp_state, "demoted with `pacslb ha demote`")
            self._wake.set()
            return {"ok": True, "message": "demoted: this node refuses direct changes and takes the primary's configuration"}

        return router


def master_intervals(transitions: list, now: float) -> list[tuple[float, float]]:
    """[start, end) of each time a node was master, from its (time, state) transitions in order."""
    intervals: list[tuple[float, float]] = []
    start: float | None = None
    for at, state in sorted((float(t[0]), str(t[1])) for t in transitions):
        if state == "MASTER" and start is None:
            start = at
        elif state != "MASTER" and start is not None:
            intervals.append((start, at))
            start = None
    if start is not None:
        intervals.append((start, now))
    return intervals


def _ips(config: Config):
    from ..model.ha import floating_ips

    return floating_ips(config)
