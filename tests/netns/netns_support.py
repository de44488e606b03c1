"""Network namespaces for tests and benchmarks: unique names, private addresses only inside them, full cleanup.

    with Lab() as lab:
        lb = lab.ns("lb")                     # pacslb-<pid>-<n>-lb
        lab.veth(lb, "l0", client, "c0")
        lab.sh(lb, "ip addr add 10.99.0.1/24 dev l0")
        proc = lab.popen(rs1, [sys.executable, SERVER, ...])

Everything a Lab creates (namespaces and the processes it started, by PID) is removed on exit, also
after a failure. Never any traffic outside these namespaces.
"""

from __future__ import annotations

import itertools
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

IP = "ip"
_counter = itertools.count(1)


class Lab:
    def __init__(self) -> None:
        self.tag = f"pacslb-{os.getpid()}-{next(_counter)}"
        self.namespaces: list[str] = []
        self.processes: list[subprocess.Popen] = []

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ns(self, role: str) -> str:
        name = f"{self.tag}-{role}"
        subprocess.run([IP, "netns", "add", name], check=True, capture_output=True, timeout=30)
        self.namespaces.append(name)
        self.sh(name, "ip link set lo up")
        return name

    def run(self, ns: str, args: list[str], check: bool = True, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
        result = subprocess.run([IP, "netns", "exec", ns, *args], capture_output=True, text=True, timeout=timeout, **kw)
        if check and result.returncode != 0:
            raise RuntimeError(f"{ns}: {' '.join(args)}: {result.stdout}{result.stderr}")
        return result

    def sh(self, ns: str, command: str, check: bool = True) -> str:
        return self.run(ns, shlex.split(command), check=check).stdout

    def popen(self, ns: str, args: list[str], **kw) -> subprocess.Popen:
        proc = subprocess.Popen([IP, "netns", "exec", ns, *args], **kw)
        self.processes.append(proc)
        return proc

    def veth(self, ns_a: str, dev_a: str, ns_b: str, dev_b: str) -> None:
        """A veth pair with one end in each namespace (both brought up)."""
        self.sh(ns_a, f"ip link add {dev_a} type veth peer name {dev_b} netns {ns_b}")
        self.sh(ns_a, f"ip link set {dev_a} up")
        self.sh(ns_b, f"ip link set {dev_b} up")

    def mac(self, ns: str, dev: str) -> str:
        return self.sh(ns, f"cat /sys/class/net/{dev}/address").strip()

    def stop(self, proc: subprocess.Popen, timeout: float = 10) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)

    def close(self) -> None:
        for proc in reversed(self.processes):
            try:
                self.stop(proc)
            except Exception:  # noqa: BLE001 - go on cleaning
                pass
        for name in reversed(self.namespaces):
            subprocess.run([IP, "netns", "del", name], capture_output=True, timeout=30)
        self.namespaces.clear()


def wait_until(predicate, timeout: float, interval: float = 0.1, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
