"""The HA pair subsystem: the VRRP record, the peer link (configuration sync) and split brain.

Built by the composition root when the configuration has an `ha` section; keepalived is an engine
(engines/keepalived) that the change transaction drives like the others. This subsystem

- reads the VRRP state changes keepalived's notify script appends, and keeps them with their reason;
- serves the peer link: HTTPS on `ha.address`:`ha.sync.port`, client certificates both ways, the peer's
  certificate pinned (ha/peer_link.py);
- asks the peer for its state every `ha.sync.interval` (master, revision, last sync), and on the
  primary sends the running configuration whenever the peer runs another one, and at once after every
  applied revision (`applied`); a promoted secondary neither takes nor sends configurations;
- applies what the primary pushes through the change front door (kind `sync`, the only change a
  secondary takes: ha/roles.py);
- watches for split brain (both nodes master), logs it and applies `ha.split_brain`.

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
from dataclasses import asdict
from typing import Any, Callable

from .. import files
from ..change.service import Changes, Origin
from ..engines.keepalived import process as keepalived_process
from ..engines.keepalived.engine import KeepalivedEngine
from ..engines.keepalived.render import SPLIT_BRAIN_BONUS
from ..model.checks import resolve
from ..model.config import Config
from ..request_limits import PEER_BODY_LIMIT, JsonBodyLimit
from ..serving import InLoopServer, SubsystemError
from ..store import StoreError
from . import peer_link, split_brain
from .roles import SYNC_KIND, Roles
from .vrrp import MAX_TRANSITIONS, Event, reason

log = logging.getLogger("pacslb.ha")
logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per peer-link request would drown the log

EVENT_POLL = 0.1
PUSH_TIMEOUT = 60.0


class HAPair:
    name = "HA pair (VRRP record, peer link)"

    def __init__(self, changes: Changes, keepalived: KeepalivedEngine, roles: Roles,
                 on_event: Callable[[str, str], None] | None = None) -> None:  # fmt: skip
        self.changes = changes
        self._on_event = on_event  # the composition root passes each line on to alerts
        self.keepalived = keepalived
        self.roles = roles
        self.root = changes.paths.root
        self.kpaths = keepalived.paths
        self.vrrp_state = "UNKNOWN"
        self.vrrp_since: float | None = None
        self.priority: int | None = None
        self.events: deque[Event] = deque(maxlen=MAX_TRANSITIONS)
        self._offset = 0
        self.peer: dict[str, Any] | None = None  # the peer's last answer
        self.peer_seen: float | None = None
        self.peer_error: str | None = "not asked yet"
        self.split_brain: dict[str, Any] | None = None  # the latest one reported
        self.watching_since = 0.0  # split brains over before this are not reported (set at start)
        self.last_push: dict[str, Any] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task] = []
        self._server: InLoopServer | None = None
        self._client_ctx: ssl.SSLContext | None = None
        self._config_ha = changes.config.ha

    @property
    def config(self) -> Config:
        return self.changes.config

    @property
    def ha(self):
        return self.config.ha

    # --- node-local state files -----------------------------------------------------------------------

    @property
    def promoted(self) -> bool:
        return self.roles.promoted

    def set_promoted(self, value: bool) -> None:
        self.roles.set_promoted(value)

    @property
    def pushes(self) -> bool:
        return self.roles.pushes

    @property
    def takes_pushes(self) -> bool:
        return self.roles.takes_pushes

    def synced(self) -> dict[str, Any] | None:
        text = files.read_text(self.changes.paths.ha_synced)
        return json.loads(text) if text else None

    def _record_synced(self, record: dict[str, Any]) -> None:
        files.atomic_write(self.changes.paths.ha_synced, json.dumps(record) + "\n")

    # --- VRRP state ---------------------------------------------------------------------------------------

    def event(self, state: str, why: str, priority: int | None = None, at: float | None = None) -> None:
        """Add a line to the VRRP record (keepalived's engine reports its restarts here too)."""
        self.events.append(Event(at or time.time(), state, why, priority))
        if self._on_event is not None:
            self._on_event(state, why)

    async def _read_events(self) -> None:
        while not self._stopping:
            try:
                found, self._offset = await asyncio.to_thread(keepalived_process.read_events, self.kpaths.events,
                                                              self._offset)  # fmt: skip
            except OSError as exc:
                log.warning("cannot read %s: %s", self.kpaths.events, exc)
                found = []
            for t in found:
                if t.state == "START":  # the controller's mark before keepalived starts afresh: not a VRRP state
                    self.event(t.state, reason(self.vrrp_state, t.state), t.priority, t.at)
                    continue
                if t.state == self.vrrp_state:
                    continue
                why = reason(self.vrrp_state, t.state)
                log.warning("VRRP: %s -> %s (%s)", self.vrrp_state, t.state, why)
                self.event(t.state, why, t.priority, t.at)
                self.vrrp_state, self.vrrp_since, self.priority = t.state, t.at, t.priority
                self._wake.set()
            await asyncio.sleep(EVENT_POLL)

    # --- the peer link ------------------------------------------------------------------------------------

    def local_state(self) -> dict[str, Any]:
        """What this node tells its peer (and `pacslb ha status`)."""
        return {
            "role": self.ha.role,
            "address": self.ha.address,
            "promoted": self.promoted,
            "vrrp_state": self.vrrp_state,
            "vrrp_since": self.vrrp_since,
            "priority": self.priority,
            "revision": self.changes.store.current_id(),
            "synced_digest": peer_link.synced_digest(self.config),
            "synced": self.synced(),
            "keepalived_pid": self.keepalived.pid,
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
            peer_cert = resolve(self.ha.sync.peer_certificate, self.changes.base_dir)
            self._client_ctx = peer_link.client_context(self.root, peer_cert)
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
        self.peer, self.peer_seen, self.peer_error = peer, time.time(), None
        self._check_split_brain(peer, time.time())
        self._keep_current(peer)
        if self.pushes and peer.get("synced_digest") != peer_link.synced_digest(self.config):
            await self._push(peer)

    def _check_split_brain(self, peer: dict[str, Any], now: float) -> None:
        """Were (or are) both nodes master at once for at least two adverts? From the two nodes' transitions, at every
        answer of the peer: a cut shorter than the sync interval (VRRP settles it within a few adverts) leaves no failed
        ask behind, only the transitions. Each split brain is reported once, at ERROR with its duration."""
        mine = [[e.at, e.state] for e in self.events if e.state != "SPLIT-BRAIN"]
        least = 2 * self.ha.advert_interval.seconds
        for found in split_brain.overlaps(mine, peer.get("transitions") or [], now, least):
            if found.end < self.watching_since:
                continue  # over before this controller ran: not told again at every restart
            known = self.split_brain
            if known is not None and abs(found.start - known["since"]) < 0.001:
                if known["resolved"] is None and not found.ongoing:
                    known.update(resolved=found.end, seconds=round(found.seconds, 2))
                    log.warning("split brain over: both nodes were master for %.2fs; this node is %s, the peer %s",
                                found.seconds, self.vrrp_state, peer.get("vrrp_state"))  # fmt: skip
                continue
            if known is not None and found.start < known["since"]:
                continue  # an older one, reported before the latest
            self._report_split_brain(found, peer)

    def _report_split_brain(self, found: split_brain.Overlap, peer: dict[str, Any]) -> None:
        rule = self.ha.split_brain
        keeper = "this node" if self.vrrp_state == "MASTER" else "the peer" if peer.get("vrrp_state") == "MASTER" else "none"
        self.split_brain = {"since": found.start, "rule": rule, "resolved": None if found.ongoing else found.end,
                            "seconds": round(found.seconds, 2), "kept_by": keeper}  # fmt: skip
        if found.ongoing:
            what = f"both nodes are master (for {found.seconds:.2f}s so far)"
            then = f"the rule {rule} decides: {split_brain.winner(rule)} keeps the floating IPs"
        else:
            what = f"both nodes were master for {found.seconds:.2f}s"
            then = f"rule {rule}: {keeper} keeps the floating IPs"
        log.error("split brain: %s; %s", what, then)
        self.event("SPLIT-BRAIN", f"{what}; {then}", at=found.start)

    def _keep_current(self, peer: dict[str, Any]) -> None:
        """`split_brain: keep-current`: the bonus marks the node that held the floating IPs while the peer was seen as backup."""
        if self.ha.split_brain != "keep-current":
            return
        if self.vrrp_state == "MASTER" and peer.get("vrrp_state") == "BACKUP":
            self.keepalived.set_bonus(SPLIT_BRAIN_BONUS)
        elif self.vrrp_state != "MASTER":
            self.keepalived.set_bonus(0)

    async def _push(self, peer: dict[str, Any]) -> None:
        rev = await asyncio.to_thread(self.changes.store.current)
        # What the revision says, not the running model: a change sets the running model a moment before its
        # revision is marked applied, and the number pushed must name the configuration pushed.
        # The revision holds its secrets as the placeholder: the change front door puts back the values it ran with.
        try:
            config = await asyncio.to_thread(self.changes.revision_config, rev) if rev else self.config
        except StoreError as exc:
            log.error("revision %s cannot be pushed to the peer %s: %s", rev.id if rev else None, self.ha.peer_address, exc)
            self.last_push = {"at": time.time(), "revision": rev.id if rev else None, "ok": False, "message": str(exc)}
            return
        body = {
            "revision": rev.id if rev else None,
            "author": rev.author if rev else "pacslb",
            "message": rev.message if rev else "",
            "created_at": rev.created_at if rev else time.time(),
            "from": self.ha.address,
            "config": peer_link.synced_data(config),
            "digest": peer_link.synced_digest(config),
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
            except Exception:
                log.exception("the peer link loop failed; it goes on")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.ha.sync.interval.seconds)

    async def receive(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """A configuration pushed by the peer: applied here as the same revision (its number kept in synced.json)."""
        if not self.takes_pushes:
            why = "it was promoted (`pacslb ha demote` undoes it)" if self.promoted else "it is the primary"
            return 409, {"outcome": "refused", "message": f"this node takes no configuration from its peer: {why}"}
        merged = peer_link.merge_local(body.get("config") or {}, self.config)
        primary_rev = body.get("revision")
        result = await self.changes.apply(
            data=merged,
            origin=Origin(str(body.get("author") or "pacslb")[:200], "ha"),
            message=f"revision {primary_rev} of the primary {body.get('from')}: {body.get('message') or ''}".strip()[:2000],
            kind=SYNC_KIND,
            action="ha.sync",
            target=f"revision {primary_rev}",
        )
        if result.outcome.value in ("applied", "unchanged"):
            local = result.revision.id if result.revision else self.changes.store.current_id()
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
        app.add_middleware(JsonBodyLimit, max_bytes=PEER_BODY_LIMIT)  # a peer's push: bounded, not nested too deep

        @app.get("/ha/v1/state")
        async def state() -> dict:
            return await asyncio.to_thread(self.local_state)

        @app.post("/ha/v1/config")
        async def config(pushed: dict = Body(...)) -> JSONResponse:
            status, body = await self.receive(pushed)
            return JSONResponse(body, status_code=status)

        peer_cert = resolve(self.ha.sync.peer_certificate, self.changes.base_dir)
        sock = peer_link.server_socket(self.ha.address, self.ha.sync.port)
        self._server = InLoopServer(app, sock, timeout_graceful_shutdown=2, **peer_link.server_options(self.root, peer_cert))
        peer_link.harden_server(self._server)  # TLS 1.2+, AEAD only, in code (uvicorn sets no minimum version)
        await self._server.start()

    # --- the subsystem ------------------------------------------------------------------------------------

    async def start(self, config: Config) -> None:
        ha = config.ha
        assert ha is not None
        peer_link.ensure_node_certificate(self.root, f"pacslb HA {ha.role} {ha.address}", [ha.address])
        peer_cert = resolve(ha.sync.peer_certificate, self.changes.base_dir)
        try:
            peer_link.check_pin(peer_cert, ha.sync.peer_fingerprint)
        except peer_link.PeerLinkError as exc:
            raise SubsystemError(str(exc)) from None
        self.roles.dir.mkdir(parents=True, exist_ok=True)
        self.watching_since = time.time()
        events = self.kpaths.events
        self._offset = events.stat().st_size if events.exists() else 0
        last, _ = keepalived_process.read_events(events)
        # the recorded history (it outlives controllers): the latest transitions, with their reasons
        previous = "UNKNOWN"
        for t in last[-MAX_TRANSITIONS:]:
            if t.state != previous:
                self.event(t.state, reason(previous, t.state), t.priority, t.at)
                previous = t.state
        states = [t for t in last if t.state != "START"]
        if states and keepalived_process.adopt(self.kpaths) == self.keepalived.pid and states[-1].state != "STOP":
            self.vrrp_state, self.vrrp_since, self.priority = states[-1].state, states[-1].at, states[-1].priority
        try:
            await self._serve()
        except (OSError, SystemExit) as exc:
            raise SubsystemError(f"the peer link cannot listen on {ha.address}:{ha.sync.port}: {exc}") from None
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._read_events()), loop.create_task(self._peer_loop())]
        log.info("HA pair: %s %s, peer %s; peer link on %s:%d", ha.role, ha.address, ha.peer_address, ha.address,
                 ha.sync.port)  # fmt: skip

    async def applied(self, config: Config) -> None:
        """A new configuration runs (keepalived took it in the transaction): push it to the peer at once."""
        if config.ha != self._config_ha:
            self._client_ctx = None  # the peer's certificate may have moved
            self._config_ha = config.ha
        self._wake.set()  # push at once (in the peer loop's task, outside the change gate)

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.close()
            self._server = None

    # --- status and control (controller API: ha/api.py) --------------------------------------------------

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
            "keepalived": {"pid": self.keepalived.pid, "restarts": self.keepalived.restarts, "error": self.keepalived.error},
            "split_brain": self.split_brain,
            "split_brain_rule": ha.split_brain,
            "last_push": self.last_push,
            "transitions": [asdict(e) for e in self.events],
        }

    def promote(self) -> dict[str, Any]:
        if self.ha.role == "primary":
            return {"ok": True, "message": "this node is the primary: it takes changes already"}
        self.set_promoted(True)
        log.warning("promoted: this secondary takes changes and no longer takes the primary's configuration "
                    "(it does not push its own either)")  # fmt: skip
        self.event(self.vrrp_state, "promoted with `pacslb ha promote`")
        return {"ok": True, "message": "promoted: this node takes changes now, and no configuration from its peer"}

    def demote(self) -> dict[str, Any]:
        if self.ha.role == "primary":
            return {"ok": False, "message": "this node is the primary by its configuration (ha.role): nothing to demote"}
        self.set_promoted(False)
        self.event(self.vrrp_state, "demoted with `pacslb ha demote`")
        self._wake.set()
        return {"ok": True, "message": "demoted: this node refuses direct changes and takes the primary's configuration"}
