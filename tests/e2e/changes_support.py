"""Helpers of the e2e tests of changes (runtime control, apply, revisions, rollback).

answers(host, port, count, path, source) -> list[str]  real server names that answered `count` new connections
workers(appliance) -> list[int]                        HAProxy's worker PIDs (show proc)
reloads(appliance) -> int                              the master's reload counter
store(appliance) -> RevisionStore                      the appliance's revisions (read directly)
server_line(appliance, rs) -> str                      the `server` line of real server `rs` in haproxy.cfg
running_with(appliance, change) -> str                 the running configuration (JSON, which is YAML too)
                                                       after change(data) edited its plain data
LoadGenerator(host, port, ...)                         bounded HTTP load (keep-alive and/or a new connection
                                                       per request) counting every failed request
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from dataclasses import dataclass, field

from pacslb.engines.haproxy import process
from pacslb.store import RevisionStore
from support.net import http_get


def answers(host: str, port: int, count: int = 10, path: str = "/", source: str | None = None) -> list[str]:
    names = []
    for _ in range(count):
        status, body = http_get(host, port, path, source=source)
        assert status == 200, (status, body)
        names.append(body.strip())
    return names


def workers(appliance) -> list[int]:
    """Every HAProxy worker (after a failed reload, the one that serves counts as 'old' in show proc)."""
    return sorted(w.pid for w in process.show_proc(appliance.paths).workers)


def reloads(appliance) -> int:
    return process.show_proc(appliance.paths).master.reloads


def store(appliance) -> RevisionStore:
    return RevisionStore(appliance.paths.revisions_db, create=False)


def server_line(appliance, real_server: str) -> str:
    for line in appliance.paths.haproxy_config.read_text().splitlines():
        if line.strip().startswith(f"server {real_server} "):
            return line.strip()
    raise AssertionError(f"no server {real_server} in {appliance.paths.haproxy_config}")


def running_with(appliance, change) -> str:
    data = store(appliance).current().config_data
    change(data)
    return json.dumps(data)


# --- load ----------------------------------------------------------------------------------------


@dataclass
class LoadStats:
    ok: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    answered_by: dict[str, int] = field(default_factory=dict)

    def add_error(self, what: str) -> None:
        self.failed += 1
        self.errors[what] = self.errors.get(what, 0) + 1


class LoadGenerator:
    """Clients sending GET requests back to back, until stopped or `max_seconds` (bounded in time and count).

    keep-alive clients reuse one connection for as long as the server keeps it open; close clients open
    a new connection per request. Every request that does not end in a complete 200 answer counts as
    failed, connection errors included: no retry is hidden.
    """

    def __init__(self, host: str, port: int, *, keepalive: int = 2, close: int = 2, path: str = "/",
                 max_seconds: float = 300.0, max_requests: int = 2_000_000) -> None:  # fmt: skip
        self.host, self.port, self.path = host, port, path
        self.max_seconds, self.max_requests = max_seconds, max_requests
        self.stats = {"keep-alive": LoadStats(), "close": LoadStats()}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=("keep-alive",), daemon=True) for _ in range(keepalive)]
        self._threads += [threading.Thread(target=self._run, args=("close",), daemon=True) for _ in range(close)]

    def __enter__(self) -> "LoadGenerator":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    @property
    def total(self) -> int:
        return sum(s.ok + s.failed for s in self.stats.values())

    def wait_for(self, requests: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.total < requests and time.monotonic() < deadline:
            time.sleep(0.05)

    def _record(self, kind: str, ok: bool, what: str) -> None:
        with self._lock:
            stats = self.stats[kind]
            if ok:
                stats.ok += 1
                stats.answered_by[what] = stats.answered_by.get(what, 0) + 1
            else:
                stats.add_error(what)

    def _run(self, kind: str) -> None:
        deadline = time.monotonic() + self.max_seconds
        conn: http.client.HTTPConnection | None = None
        headers = {"Connection": "close"} if kind == "close" else {}
        while not self._stop.is_set() and time.monotonic() < deadline and self.total < self.max_requests:
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
                conn.request("GET", self.path, headers=headers)
                response = conn.getresponse()
                body = response.read().decode(errors="replace")
                if response.status == 200:
                    self._record(kind, True, body.strip())
                else:
                    self._record(kind, False, f"status {response.status}")
                if kind == "close" or (response.getheader("Connection") or "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException, socket.timeout) as exc:
                self._record(kind, False, type(exc).__name__)
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()
