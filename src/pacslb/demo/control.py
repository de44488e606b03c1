"""Client side: start the demo process, wait for its ready line, and drive its control endpoint.

Control endpoint (plain HTTP on the control address, JSON answers):

    GET  /health                             200 "OK"
    GET  /replicas                           every replica's state (a list)
    GET  /replicas/<service>                 the states of one service's replicas
    GET  /replicas/<service>/<replica>       one replica's state
    POST /replicas/<service>/<replica>/stop  close its listening socket and its connections
    POST /replicas/<service>/<replica>/start listen again (same address and port)
    POST /replicas/<service>/<replica>/unhealthy   keep serving, but GET /health -> 503
    POST /replicas/<service>/<replica>/healthy     GET /health -> 200 again
    POST /replicas/<service>/<action>        the action on every replica of the service
    POST /shutdown                           exit as on SIGTERM

A state is {"service", "replica", "kind", "address", "port", "tls", "state": "up"|"stopped",
"healthy", "connections", "accepted", "requests"}. Unknown names answer 404.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from .spec import DemoSpec


class DemoError(RuntimeError):
    pass


class DemoControl:
    """A synchronous client of the control endpoint (stdlib only)."""

    def __init__(self, host: str, port: int, timeout: float = 10.0):
        self.base = f"http://{f'[{host}]' if ':' in host else host}:{port}"
        self.timeout = timeout

    def _call(self, method: str, path: str) -> Any:
        req = urllib.request.Request(self.base + path, method=method, data=b"" if method == "POST" else None)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                body = r.read()
        except urllib.error.HTTPError as e:
            raise DemoError(f"{method} {path}: {e.code} {e.read().decode(errors='replace').strip()}") from None
        return json.loads(body) if body.strip().startswith((b"{", b"[")) else body.decode()

    def replicas(self) -> list[dict[str, Any]]:
        return self._call("GET", "/replicas")

    def state(self, service: str, replica: str) -> dict[str, Any]:
        return self._call("GET", f"/replicas/{quote(service, safe='')}/{quote(replica, safe='')}")

    def action(self, service: str, replica: str | None, action: str) -> Any:
        path = f"/replicas/{quote(service, safe='')}"
        if replica is not None:
            path += f"/{quote(replica, safe='')}"
        return self._call("POST", f"{path}/{action}")

    def stop(self, service: str, replica: str | None = None) -> Any:
        return self.action(service, replica, "stop")

    def start(self, service: str, replica: str | None = None) -> Any:
        return self.action(service, replica, "start")

    def set_healthy(self, service: str, replica: str | None, healthy: bool) -> Any:
        return self.action(service, replica, "healthy" if healthy else "unhealthy")

    def shutdown(self) -> Any:
        return self._call("POST", "/shutdown")


class DemoProcess:
    """The demo services as a child process: ``with DemoProcess(spec) as demo: ...``.

    The child runs ``python -m pacslb.demo.services --spec FILE --exit-on-stdin-eof``, so it
    also ends if this process dies (its stdin pipe closes). ``max_lifetime`` bounds its life.
    """

    def __init__(
        self,
        spec: DemoSpec | str | Path,
        *,
        python: str = sys.executable,
        ready_timeout: float = 20.0,
        max_lifetime: float | None = None,
        stderr: IO | int | None = None,
        log_level: str = "WARNING",
        env: dict[str, str] | None = None,
    ):
        self._tmp: tempfile.TemporaryDirectory | None = None
        if isinstance(spec, DemoSpec):
            self._tmp = tempfile.TemporaryDirectory(prefix="pacslb-demo-")
            self.spec_path = spec.write(Path(self._tmp.name) / "spec.json")
        else:
            self.spec_path = Path(spec)
        self.python = python
        self.ready_timeout = ready_timeout
        self.max_lifetime = max_lifetime
        self.stderr = stderr
        self.log_level = log_level
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.ready: dict[str, Any] | None = None
        self.control: DemoControl | None = None
        self._buf = b""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def command(self) -> list[str]:
        cmd = [
            self.python, "-m", "pacslb.demo.services",
            "--spec", str(self.spec_path),
            "--exit-on-stdin-eof",
            "--log-level", self.log_level,
        ]  # fmt: skip
        if self.max_lifetime:
            cmd += ["--max-lifetime", str(self.max_lifetime)]
        return cmd

    def start(self) -> dict[str, Any]:
        """Start the child and return its ready line (as a dict); raise DemoError on failure."""
        self.proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=self.env,
        )
        line = self.read_line(self.ready_timeout)
        if line is None:
            self.stop()
            raise DemoError(f"no ready line within {self.ready_timeout}s")
        try:
            msg = json.loads(line)
        except ValueError:
            self.stop()
            raise DemoError(f"unexpected output: {line!r}") from None
        if msg.get("event") != "ready":
            self.stop()
            raise DemoError(f"demo services failed: {msg.get('message', msg)}")
        self.ready = msg
        self.control = DemoControl(msg["control"]["host"], msg["control"]["port"])
        return msg

    def read_line(self, timeout: float) -> str | None:
        """The next stdout line of the child, or None at EOF or timeout."""
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buf:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    return None
                chunk = os.read(fd, 65536)
                if not chunk:
                    return None
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the child by PID, wait, SIGKILL if it does not end; return its exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        return self.proc.returncode

    def __enter__(self) -> "DemoProcess":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
