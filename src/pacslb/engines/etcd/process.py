"""etcd: start one member in a session of its own, adopt it, stop it.

The member runs as `etcd --config-file=<state>/etcd/etcd.conf.yml` (a controller killed with SIGKILL leaves it
serving: fail static). etcd writes no PID file; pacslb writes one beside the configuration, and adopts a member
only when that PID still runs etcd on this file. Never the system's etcd: nothing here reads /etc/default/etcd, the
ETCD_* variables of the environment are not passed on, and `make deps` keeps the Debian service stopped.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .. import daemon
from ..daemon import is_running

DEFAULT_BINARY = shutil.which("etcd") or "/usr/bin/etcd"
STOP_TIMEOUT = 10.0
START_TIMEOUT = 20.0


class EtcdProcessError(Exception):
    """etcd did not start or did not stop."""


@dataclass(frozen=True)
class Files:
    dir: Path

    @property
    def config(self) -> Path:
        return self.dir / "etcd.conf.yml"

    @property
    def data(self) -> Path:
        return self.dir / "data"

    @property
    def pid(self) -> Path:
        return self.dir / "etcd.pid"

    @property
    def log(self) -> Path:
        return self.dir / "etcd.log"


def command_line(files: Files, binary: str = DEFAULT_BINARY) -> list[str]:
    return [binary, f"--config-file={files.config}"]


def adopt(files: Files) -> int | None:
    """The PID of the etcd that already runs this state directory's member, or None."""
    return daemon.adopt(files.pid, "etcd", f"--config-file={files.config}")


_popens: dict[int, subprocess.Popen] = {}


def alive(pid: int) -> bool:
    popen = _popens.get(pid)
    if popen is not None:
        popen.poll()  # reap an exited child: a zombie would look alive
    return is_running(pid)


def _listens(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def start(files: Files, client: tuple[str, int], binary: str = DEFAULT_BINARY, timeout: float = START_TIMEOUT) -> int:
    """Start the member; its PID once its client port accepts connections (etcd opens it before it has a
    leader: the requests wait for quorum, the start does not, so the first member of three starts alone)."""
    files.data.mkdir(parents=True, exist_ok=True)
    files.data.chmod(0o700)  # etcd refuses a data directory others can read
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
    with open(files.log, "ab") as log:
        popen = subprocess.Popen(command_line(files, binary), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                 cwd=files.dir, start_new_session=True, close_fds=True, env=env)  # fmt: skip
    files.pid.write_text(f"{popen.pid}\n")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise EtcdProcessError(f"etcd exited at start ({popen.returncode}): {_tail(files.log)}")
        if _listens(*client):
            _popens[popen.pid] = popen
            return popen.pid
        time.sleep(0.05)
    stop(popen.pid)
    raise EtcdProcessError(f"etcd did not listen on {client[0]}:{client[1]} within {timeout:g}s: {_tail(files.log)}")


def _tail(path: Path, lines: int = 3) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])[-1200:]
    except OSError:
        return f"see {path}"


def stop(pid: int, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, then SIGKILL when it has not ended within `timeout`."""
    if not alive(pid):
        _popens.pop(pid, None)
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            _popens.pop(pid, None)
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    while alive(pid) and time.monotonic() < deadline + 5:
        time.sleep(0.05)
    _popens.pop(pid, None)
