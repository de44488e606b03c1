"""Helpers of the e2e tests that run the real appliance (`pacslb up` as a subprocess, real HAProxy) on loopback.

The fixtures that use them are in conftest.py; tests import these helpers by name
(`from e2e_support import ...`), never from conftest (pytest's advice: conftest is not a module to import).

  free_port(host) -> int                         a TCP port nobody listens on, on that address
  loopback_host(last_octet) -> str               127.X.Y.last_octet, X.Y random per test session
  pid_gone(pid) -> bool                          no such process, or a zombie
  wait_until(predicate, timeout, message) -> T   poll until truthy; fail the test with `message`
  haproxy_masters(state_dir) -> list[int]        live HAProxy masters of that state dir, read from /proc
  processes_of(state_dir) -> list[int]           live processes whose command line names the state dir
  TinyHTTPServer(name, host, port=0)             a threaded HTTP server answering '<name>\\n'; .stop(), .start()
  http_service_config(port, servers, ...) -> str a layer7-http configuration in front of TinyHTTPServers
  Appliance                                      one appliance on a tmp state dir: cli(), up(), api(), status(),
                                                 stop(), kill9(), haproxy_pid(), remember_pids(), kill_leftovers()
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, TypeVar

import httpx
import pytest

from pacslb.paths import StatePaths

T = TypeVar("T")

PACSLB = [sys.executable, "-m", "pacslb"]
STARTUP_TIMEOUT = 30.0
CLI_TIMEOUT = 60.0

# 127.X.Y.0/24 for this test session: away from 127.0.0.1 and from other sessions running at once.
_SESSION_NET = (random.randint(100, 199), random.randint(1, 254))


# --- small helpers -------------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def loopback_host(last_octet: int) -> str:
    """An address on lo (all of 127/8 is local) in this session's own /24."""
    return f"127.{_SESSION_NET[0]}.{_SESSION_NET[1]}.{last_octet}"


def proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat[stat.rfind(")") + 2 :].split()[0]


def pid_gone(pid: int) -> bool:
    """No such process, or a zombie (PID 1 reaps orphans late)."""
    return proc_state(pid) in (None, "Z", "X")


def wait_until(predicate: Callable[[], T], timeout: float, message: str = "condition", interval: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for: {message}")
        time.sleep(interval)


def _cmdline(pid: int) -> list[str]:
    try:
        return [p.decode(errors="replace") for p in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if p]
    except (FileNotFoundError, ProcessLookupError):
        return []


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(stat[stat.rfind(")") + 2 :].split()[1])


def _live_pids() -> Iterable[int]:
    for name in os.listdir("/proc"):
        if name.isdigit() and not pid_gone(int(name)):
            yield int(name)


def processes_of(state_dir: Path) -> list[int]:
    """Live processes whose command line names the state directory (controllers, HAProxy master and workers)."""
    needle = str(state_dir)
    return sorted(p for p in _live_pids() if p != os.getpid() and any(needle in arg for arg in _cmdline(p)))


def haproxy_masters(state_dir: Path) -> list[int]:
    """Live HAProxy masters of a state directory: haproxy processes naming its master socket, whose parent is not one."""
    sock = str(StatePaths(state_dir).haproxy_master_socket)
    ours = {
        p for p in _live_pids()
        if (argv := _cmdline(p)) and Path(argv[0]).name == "haproxy" and any(a.split(",")[0] == sock for a in argv)
    }
    return sorted(p for p in ours if _ppid(p) not in ours)


def http_get(host: str, port: int, path: str = "/", timeout: float = 5.0) -> tuple[int, str]:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


# --- real servers --------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802
        body = f"{self.server.name}\n".encode()  # type: ignore[attr-defined]
        self.server.requests += 1  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, *args: object) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address) -> None:
        pass  # health checks close early; that is not an error here


class TinyHTTPServer:
    """A real server for tests: answers every GET with its name. stop() makes its port refuse connections."""

    def __init__(self, name: str, host: str, port: int = 0) -> None:
        self.name = name
        self.host = host
        self.port = port or free_port(host)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def requests(self) -> int:
        return self._server.requests if self._server else 0  # type: ignore[attr-defined]

    def start(self) -> "TinyHTTPServer":
        server = _Server((self.host, self.port), _Handler)
        server.name = self.name  # type: ignore[attr-defined]
        server.requests = 0  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def http_service_config(
    port: int,
    servers: list[TinyHTTPServer],
    *,
    name: str = "web",
    vip: str = "127.0.0.1",
    interval_ms: int = 300,
    fall: int = 2,
    rise: int = 1,
    weights: dict[str, int] | None = None,
    max_connections: int = 2000,
) -> str:
    """A one-service configuration: a layer7-http VIP with an HTTP health check, in front of `servers`.

    max_connections stays low: HAProxy asks for about two file descriptors per connection, and test
    machines (containers) often cap open files at a few thousands.
    """
    weights = weights or {}
    lines = [
        "version: 1",
        f"settings: {{max_connections: {max_connections}}}",
        "virtual_services:",
        f"  - name: {name}",
        "    mode: layer7-http",
        f"    listen: [{{address: {vip}, port: {port}}}]",
        "    health_check: {type: http, path: /, "
        f"interval: {interval_ms}ms, timeout: {min(interval_ms, 1000)}ms, rise: {rise}, fall: {fall}}}",
        "    real_servers:",
    ]
    for s in servers:
        weight = f", weight: {weights[s.name]}" if s.name in weights else ""
        lines.append(f"      - {{name: {s.name}, address: {s.host}, port: {s.port}{weight}}}")
    return "\n".join(lines) + "\n"


# --- the appliance -------------------------------------------------------------------------------


@dataclass
class Appliance:
    """One appliance on a tmp state directory. Every PID it ever saw is kept, for teardown."""

    state_dir: Path
    config: Path
    log: Path
    process: subprocess.Popen | None = None
    seen_pids: set[int] = field(default_factory=set)
    controllers: list[subprocess.Popen] = field(default_factory=list)

    @property
    def paths(self) -> StatePaths:
        return StatePaths(self.state_dir)

    # --- commands

    def cli(self, *args: str, timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess:
        """`pacslb ARGS --state-dir DIR`, bounded by `timeout`."""
        return subprocess.run(
            [*PACSLB, *args, "--state-dir", str(self.state_dir)],
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )

    def up(self, wait: bool = True, extra: tuple[str, ...] = ()) -> subprocess.Popen:
        """Start a(nother) controller in the background (`extra`: more options of `pacslb up`); its output goes to `log`."""
        with open(self.log, "ab") as log:
            log.write(f"\n--- pacslb up at {time.strftime('%H:%M:%S')}\n".encode())
            log.flush()
            process = subprocess.Popen(
                [*PACSLB, "up", "-c", str(self.config), "--state-dir", str(self.state_dir), *extra],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        self.controllers.append(process)
        self.seen_pids.add(process.pid)
        self.process = process
        if wait:
            self.wait_healthy()
        return process

    def wait_healthy(self, timeout: float = STARTUP_TIMEOUT) -> dict:
        def healthy() -> dict | None:
            if self.process is not None and self.process.poll() is not None:
                pytest.fail(f"pacslb up exited with {self.process.returncode}:\n{self.read_log()}")
            try:
                response = self.api("GET", "/health")
            except (httpx.HTTPError, OSError):
                return None
            return response.json() if response.status_code == 200 else None

        result = wait_until(healthy, timeout, f"the appliance on {self.state_dir} to be healthy")
        self.remember_pids()
        return result

    def api(self, method: str, path: str, timeout: float = 5.0) -> httpx.Response:
        """The controller API over its Unix socket."""
        transport = httpx.HTTPTransport(uds=str(self.paths.controller_socket))
        with httpx.Client(transport=transport, base_url="http://pacslb", timeout=timeout) as client:
            return client.request(method, f"/api/v1{path}")

    def status(self) -> dict:
        """`pacslb status --json`, which must succeed."""
        done = self.cli("status", "--json")
        assert done.returncode == 0, f"status failed ({done.returncode}): {done.stderr}"
        return json.loads(done.stdout)

    def api_status(self) -> dict:
        response = self.api("GET", "/status")
        response.raise_for_status()
        return response.json()

    def stop(self, timeout: float = 30.0) -> subprocess.CompletedProcess:
        done = self.cli("stop", "--timeout", str(timeout), timeout=timeout + 15)
        for process in self.controllers:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        return done

    def kill9(self) -> int:
        """SIGKILL the current controller (HAProxy is left running); returns its PID."""
        assert self.process is not None
        pid = self.process.pid
        self.remember_pids()
        self.process.kill()
        self.process.wait(timeout=10)
        return pid

    # --- observation

    def haproxy_pid(self) -> int | None:
        try:
            text = self.paths.haproxy_pid.read_text().strip()
        except FileNotFoundError:
            return None
        return int(text) if text.isdigit() else None

    def remember_pids(self) -> set[int]:
        """Record every live process of this state directory (for teardown and for 'nothing left' checks)."""
        pids = set(processes_of(self.state_dir))
        pid = self.haproxy_pid()
        if pid:
            pids.add(pid)
        self.seen_pids |= pids
        return pids

    def read_log(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def haproxy_log(self) -> str:
        try:
            return self.paths.haproxy_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @staticmethod
    def server(status: dict, service: str, real_server: str) -> dict:
        vs = next(v for v in status["virtual_services"] if v["name"] == service)
        return next(r for r in vs["real_servers"] if r["name"] == real_server)

    def kill_leftovers(self) -> list[int]:
        """SIGKILL, by PID, every recorded or found process of this appliance that still runs."""
        self.remember_pids()
        needle = str(self.state_dir)
        # A recorded PID is killed only while its command line still names this state directory
        # (PIDs are reused); our own children cannot be reused before we reap them.
        left = [p for p in sorted(self.seen_pids) if not pid_gone(p) and any(needle in a for a in _cmdline(p))]
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for process in self.controllers:
            if process.poll() is None:
                process.kill()
                left.append(process.pid)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        return sorted(set(left))
