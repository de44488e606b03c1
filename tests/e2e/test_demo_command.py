"""`pacslb demo` as a user runs it: a subprocess that prints commands which answer, and stops leaving nothing.

The demo runs on a unique short state directory under /tmp, with a port offset whose six VIP ports are
free and the simulated servers on 127.<random 200..254>.x.y (--server-octet), so it clashes neither with
a demo run by hand nor with other test sessions. It runs in a session of its own, so that "Ctrl-C" is
SIGINT to its process group, as a terminal sends it. Every PID it started (the demo process, the
simulated services, HAProxy's master and workers) is read from /proc while it runs; after the stop each
must be gone. Teardown kills by PID whatever a failed test left.
"""

from __future__ import annotations

import json
import os
import random
import re
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from pacslb.paths import StatePaths
from pacslb.templates.true_pacs import SERVICES
from support.appliance import PACSLB
from support.processes import haproxy_masters, pid_gone, processes_of
from support.wait import wait_until

pytestmark = pytest.mark.e2e

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


# Below Linux's ephemeral ports (32768-60999): every VIP port (up to 9094 + offset) and the WAF tier's ports
# (10080 + offset on) stay out of the range whose ports outgoing connections take, so none is held when bound.
OFFSETS = (20000, 22600)


def free_port_offset() -> int:
    import socket

    for _ in range(200):
        offset = random.randrange(*OFFSETS)
        try:
            for spec in SERVICES:
                if spec.port is not None:
                    with socket.socket() as s:
                        s.bind(("127.0.0.1", spec.port + offset))
            return offset
        except OSError:
            continue
    raise RuntimeError("no port offset with six free VIP ports")


def children(pid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rfind(")") + 2 :].split()[1]) == pid:
            out.append(int(name))
    return out


def descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        for child in children(todo.pop()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


class DemoRun:
    """`pacslb demo` in a subprocess, with its printed output read as it comes."""

    def __init__(self, state_dir: Path, log: Path) -> None:
        self.state_dir = state_dir
        self.port_offset = free_port_offset()
        self.server_octet = random.randrange(200, 255)
        self.log = log
        self.stdout = ""
        self.pids: set[int] = set()
        with open(log, "ab") as err:
            self.process = subprocess.Popen(
                [*PACSLB, "demo", "--state-dir", str(state_dir), "--port-offset", str(self.port_offset),
                 "--server-octet", str(self.server_octet)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                start_new_session=True,
            )  # fmt: skip
        self.pids.add(self.process.pid)

    def read_until(self, pattern: str, timeout: float) -> str:
        """Read stdout until a line matches `pattern` (a regular expression); fail when the demo exits first."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while not re.search(pattern, self.stdout, re.M):
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"no {pattern!r} within {timeout:g}s; output:\n{self.stdout}\n{self.read_log()}")
                if sel.select(left):
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        pytest.fail(f"pacslb demo exited ({self.process.wait(5)}):\n{self.stdout}\n{self.read_log()}")
                    self.stdout += chunk.decode()
        return self.stdout

    def read_log(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def command_after(self, ref: str) -> str:
        """The command printed under a virtual service's line ("VIP 2")."""
        lines = self.stdout.splitlines()
        for i, line in enumerate(lines):
            if line.strip().startswith(ref + " "):
                return lines[i + 1].strip()
        raise AssertionError(f"no {ref} in the output:\n{self.stdout}")

    def remember_pids(self) -> set[int]:
        self.pids |= descendants(self.process.pid)
        self.pids |= set(processes_of(self.state_dir))
        return set(self.pids)

    def wait(self, timeout: float) -> int:
        code = self.process.wait(timeout)
        rest = self.process.stdout.read() if self.process.stdout else b""
        self.stdout += rest.decode(errors="replace")
        return code

    def kill_leftovers(self) -> list[int]:
        """SIGKILL by PID whatever of this demo still runs (a recorded PID only while it names the state dir)."""
        left = []
        if self.process.poll() is None:
            self.process.kill()
            left.append(self.process.pid)
        self.remember_pids()
        needle = str(self.state_dir)
        for pid in sorted(self.pids - {self.process.pid}):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if not pid_gone(pid) and needle in cmdline:
                os.kill(pid, signal.SIGKILL)
                left.append(pid)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            pass
        return left


@pytest.fixture
def demo_run(tmp_path):
    runs: list[DemoRun] = []

    def start() -> DemoRun:
        state_dir = Path(tempfile.mkdtemp(prefix="pacslb-dm-", dir="/tmp")) / "s"
        run = DemoRun(state_dir, tmp_path / f"demo{len(runs)}.log")
        runs.append(run)
        return run

    yield start
    for run in runs:
        try:
            left = run.kill_leftovers()
            if left:
                print(f"teardown killed leftover processes {left} of {run.state_dir}", file=sys.stderr)
        finally:
            if run.process.stdout is not None:
                run.process.stdout.close()
            haproxy_log = StatePaths(run.state_dir).haproxy_log
            if haproxy_log.exists():
                shutil.copy(haproxy_log, run.log.with_suffix(".haproxy.log"))
            shutil.rmtree(run.state_dir.parent, ignore_errors=True)


def run_printed(command: str, timeout: float = 20.0) -> subprocess.CompletedProcess:
    """Run a command exactly as the demo printed it, in a shell."""
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def assert_answers(run: DemoRun) -> None:
    """The printed commands answer through the VIPs: VIP 2 with curl (verified TLS), VIP 1 with AMQP."""
    vip2 = run.command_after("VIP 2")
    assert vip2.startswith("curl --cacert ") and f":{8443 + run.port_offset}/inference" in vip2
    if shutil.which("curl"):
        done = run_printed(vip2)
    else:  # the same request, verified against the same CA, without curl
        cacert, url = shlex.split(vip2)[2], shlex.split(vip2)[3]
        script = (
            "import ssl, sys, urllib.request; "
            f"context = ssl.create_default_context(cafile={cacert!r}); "
            f"print(urllib.request.urlopen({url!r}, context=context).read().decode())"
        )
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["service"] == "WFC_inference_443" and answer["tls"] is True
    assert answer["address"].startswith(f"127.{run.server_octet}.")

    vip1 = run.command_after("VIP 1")
    assert vip1.startswith("python3 -c ")
    done = run_printed(vip1.replace("python3", shlex.quote(sys.executable), 1))
    assert done.returncode == 0, done.stderr
    assert "WFC_RMQAMQP" in done.stdout and "pacslb-demo" in done.stdout

    vip3 = run.command_after("VIP 3")
    assert vip3 == f"curl http://127.0.0.1:{80 + run.port_offset}/inference"


def assert_nothing_left(run: DemoRun, pids: set[int]) -> None:
    wait_until(lambda: all(pid_gone(p) for p in pids), 15, what=f"processes {sorted(pids)} to end")
    assert processes_of(run.state_dir) == []
    assert haproxy_masters(run.state_dir) == []


def started_pids(run: DemoRun) -> set[int]:
    """The demo process, the simulated services and HAProxy's master and workers, read from /proc."""
    pids = run.remember_pids()
    (master,) = haproxy_masters(run.state_dir)
    pids |= {master, *descendants(master)}
    names = {Path(Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0].decode()).name for p in pids}
    assert "haproxy" in names, names
    assert any(b"pacslb.demo.services" in Path(f"/proc/{p}/cmdline").read_bytes() for p in pids), pids
    assert len(pids) >= 4  # demo, services, HAProxy master and at least one worker
    return pids


@pytest.mark.parametrize("how", ["Ctrl-C", "SIGTERM", "pacslb stop"])
def test_demo_answers_through_its_vips_and_stops_leaving_no_process(demo_run, how):
    run = demo_run()
    output = run.read_until(r"^  API docs: https://", READY_TIMEOUT)  # the WebUI lines come after the banner
    password = (run.state_dir / "initial-admin-password").read_text().strip()
    assert re.search(r"^WebUI and API: https://127\.0\.0\.1:\d+/", output, re.M)
    assert f"log in as user admin, password {password} " in output
    assert f"status: pacslb status --state-dir {run.state_dir}" in output
    pids = started_pids(run)
    assert_answers(run)

    status = subprocess.run([*PACSLB, "status", "--json", "--state-dir", str(run.state_dir)],
                            capture_output=True, text=True, timeout=30)  # fmt: skip
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert len(data["virtual_services"]) == 35
    assert data["controller"]["pid"] == run.process.pid

    if how == "Ctrl-C":
        os.killpg(run.process.pid, signal.SIGINT)  # as a terminal does: to the whole process group
    elif how == "SIGTERM":
        os.kill(run.process.pid, signal.SIGTERM)
    else:
        done = subprocess.run([*PACSLB, "stop", "--state-dir", str(run.state_dir)],
                              capture_output=True, text=True, timeout=STOP_TIMEOUT + 15)  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert run.wait(STOP_TIMEOUT) == 0, run.read_log()
    assert_nothing_left(run, pids)
    log = run.read_log()
    assert "HAProxy stopped" in log and "simulated services stopped (exit status 0)" in log, log
