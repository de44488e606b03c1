"""The appliance harness: `pacslb up` on a state directory as a subprocess, its API, and its end by PID.

  PACSLB                                       the command line of the CLI ([python, -m, pacslb])
  pacslb(*args, state_dir=..)-> list[str]     a CLI command line for that state directory
  controller_api(state_dir, method, path)      one request to the controller API over its Unix socket
  new_state_dir(prefix) -> Path                a short state directory under /tmp (HAProxy binds Unix sockets
                                               of at most 97 characters); remove its parent when done
  Appliance(state_dir, config, log)            one appliance: cli(), up(), wait_healthy(), api(), status(),
                                               stop(), kill9(), haproxy_pid(), remember_pids(), kill_leftovers(),
                                               shut_down()
  Appliance.create(config_text, workdir, prefix)  the configuration and controller log in `workdir`,
                                               the state directory from new_state_dir(prefix)

Every process an Appliance starts or sees is recorded by PID; shut_down() (for teardown, also after a
failure) runs `pacslb stop` bounded in time, then SIGKILLs by PID whatever of the state directory is
still alive. Nothing is ever killed by name. The namespaced appliances of tests/netns wrap the same
commands (pacslb(), controller_api()) in `ip netns exec`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import httpx

from pacslb.paths import StatePaths
from support.processes import cmdline, kill_pids, pid_gone, processes_of
from support.wait import wait_until

PACSLB = [sys.executable, "-m", "pacslb"]
STARTUP_TIMEOUT = 30.0
CLI_TIMEOUT = 60.0


def pacslb(*args: str, state_dir: Path) -> list[str]:
    """`pacslb ARGS --state-dir DIR` as a command line."""
    return [*PACSLB, *args, "--state-dir", str(state_dir)]


def controller_api(state_dir: Path, method: str, path: str, timeout: float = 5.0, **kw) -> httpx.Response:
    """The controller API (/api/v1`path`) over the state directory's Unix socket."""
    transport = httpx.HTTPTransport(uds=str(StatePaths(state_dir).controller_socket))
    with httpx.Client(transport=transport, base_url="http://pacslb", timeout=timeout) as client:
        return client.request(method, f"/api/v1{path}", **kw)


def new_state_dir(prefix: str = "pacslb-e2e-", name: str = "state") -> Path:
    """`/tmp/<prefix>XXXX/<name>` (not created): short, for HAProxy's Unix sockets. Remove `.parent` when done."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp")) / name


@dataclass
class Appliance:
    """One appliance on a state directory. Every PID it ever saw is kept, for teardown."""

    state_dir: Path
    config: Path
    log: Path
    process: subprocess.Popen | None = None
    seen_pids: set[int] = field(default_factory=set)
    controllers: list[subprocess.Popen] = field(default_factory=list)

    @classmethod
    def create(cls, config_text: str, workdir: Path, prefix: str = "pacslb-e2e-") -> "Appliance":
        """The configuration (pacslb.yaml) and the controller's log (pacslb-up.log) in `workdir`; a new state dir."""
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "pacslb.yaml"
        config.write_text(config_text)
        return cls(state_dir=new_state_dir(prefix), config=config, log=workdir / "pacslb-up.log")

    @property
    def paths(self) -> StatePaths:
        return StatePaths(self.state_dir)

    # --- commands

    def cli(self, *args: str, timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess:
        """`pacslb ARGS --state-dir DIR`, bounded by `timeout`."""
        return subprocess.run(
            pacslb(*args, state_dir=self.state_dir),
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def up(self, wait: bool = True, extra: tuple[str, ...] = ()) -> subprocess.Popen:
        """Start a(nother) controller in the background (`extra`: more options of `pacslb up`); its output goes to `log`."""
        with open(self.log, "ab") as log:
            log.write(f"\n--- pacslb up at {time.strftime('%H:%M:%S')}\n".encode())
            log.flush()
            process = subprocess.Popen(
                [*pacslb("up", "-c", str(self.config), state_dir=self.state_dir), *extra],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.controllers.append(process)
        self.seen_pids.add(process.pid)
        self.process = process
        if wait:
            self.wait_healthy()
        return process

    def wait_healthy(self, timeout: float = STARTUP_TIMEOUT) -> dict:
        def healthy() -> dict | None:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"pacslb up exited with {self.process.returncode}:\n{self.read_log()}")
            try:
                response = self.api("GET", "/health")
            except (httpx.HTTPError, OSError):
                return None
            return response.json() if response.status_code == 200 else None

        result = wait_until(healthy, timeout, what=f"the appliance on {self.state_dir} to be healthy")
        self.remember_pids()
        return result

    def api(self, method: str, path: str, timeout: float = 5.0, **kw) -> httpx.Response:
        """The controller API over its Unix socket."""
        return controller_api(self.state_dir, method, path, timeout, **kw)

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

    # --- the end

    def kill_leftovers(self) -> list[int]:
        """SIGKILL, by PID, every recorded or found process of this appliance that still runs."""
        self.remember_pids()
        needle = str(self.state_dir)
        # A recorded PID is killed only while its command line still names this state directory
        # (PIDs are reused); our own children cannot be reused before we reap them.
        left = kill_pids(p for p in sorted(self.seen_pids) if not pid_gone(p) and any(needle in a for a in cmdline(p)))
        for process in self.controllers:
            if process.poll() is None:
                process.kill()
                left.append(process.pid)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        return sorted(set(left))

    def shut_down(self, *, before_kill: Callable[[], object] | None = None, haproxy_log_to: Path | None = None,
                  remove_state: bool = True) -> None:  # fmt: skip
        """Teardown, also after a failure: `pacslb stop` (bounded), `before_kill()` (e.g. stop the peers the
        test started), SIGKILL by PID for anything of the state directory still alive, HAProxy's log copied
        to `haproxy_log_to` (default: haproxy.log beside the controller's log), the state dir's parent removed."""
        try:
            self.remember_pids()
            done = self.stop(timeout=15)
            if done.returncode != 0:
                print(f"pacslb stop exited {done.returncode}: {done.stderr}", file=sys.stderr)
        except Exception as exc:  # noqa: BLE001 - teardown goes on to the kill
            print(f"pacslb stop failed: {exc!r}", file=sys.stderr)
        finally:
            try:
                if before_kill is not None:
                    before_kill()
            finally:
                left = self.kill_leftovers()
                if left:
                    print(f"teardown killed leftover processes {left} of {self.state_dir}", file=sys.stderr)
                if self.paths.haproxy_log.exists():
                    shutil.copy(self.paths.haproxy_log, haproxy_log_to or self.log.with_name("haproxy.log"))
                if remove_state:
                    shutil.rmtree(self.state_dir.parent, ignore_errors=True)
