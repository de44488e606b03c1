"""etcd: start one member in a session of its own, adopt it, stop it.

The member runs as `etcd --config-file=<state>/etcd/etcd.conf.yml` (a controller killed with SIGKILL leaves it
serving: fail static). etcd writes no PID file; pacslb writes one beside the configuration, and adopts a member
only when that PID still runs etcd on this file. Never the system's etcd: nothing here reads /etc/default/etcd, the
ETCD_* variables of the environment are not passed on, and `make deps` keeps the Debian service stopped.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from .. import daemon
from ..daemon import alive as alive  # the engine asks its process module

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

    @property
    def rejoin(self) -> Path:
        """Present: the member joins a running cluster on an empty data directory (`initial-cluster-state:
        existing`); written and removed by `pacslb cluster rejoin` (cluster/members.py)."""
        return self.dir / "rejoin"

    @property
    def applied(self) -> Path:
        """SHA-256 of the etcd.conf.yml the last commit made run: plan compares it."""
        return self.dir / "applied.sha256"


def has_data(files: Files) -> bool:
    """Whether the data directory holds a member's data: a write-ahead log, etcd's own test (a start that failed
    leaves `member/snap/db` and no log)."""
    return any((files.data / "member" / "wal").glob("*.wal"))


def command_line(files: Files, binary: str = DEFAULT_BINARY) -> list[str]:
    return [binary, f"--config-file={files.config}"]


def adopt(files: Files) -> int | None:
    """The PID of the etcd that already runs this state directory's member, or None."""
    return daemon.adopt(files.pid, "etcd", f"--config-file={files.config}")


def _listens(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def start(files: Files, client: tuple[str, int], binary: str = DEFAULT_BINARY, timeout: float = START_TIMEOUT) -> int:
    """Start the member; its PID once its client port accepts connections (etcd opens it before it has a
    leader: the requests wait for quorum, the start does not, so the first member of three starts alone) and, on
    an empty data directory, once it wrote its write-ahead log (it bootstrapped or joined)."""
    # on an empty data directory, started means a write-ahead log too: etcd opens its ports before it asks the other
    # members whether they still count it (a lost data directory: it then exits), and writes its log only after
    fresh = not has_data(files)
    files.data.mkdir(parents=True, exist_ok=True)
    files.data.chmod(0o700)  # etcd refuses a data directory others can read
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
    popen = daemon.spawn(command_line(files, binary), files.log, files.dir, env)
    files.pid.write_text(f"{popen.pid}\n")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise EtcdProcessError(f"etcd exited at start ({popen.returncode}): {daemon.tail(files.log, 3, 1200)}")
        if _listens(*client) and (not fresh or has_data(files)):
            daemon.keep(popen)
            return popen.pid
        time.sleep(0.05)
    stop(popen.pid)
    raise EtcdProcessError(
        f"etcd did not listen on {client[0]}:{client[1]} within {timeout:g}s: {daemon.tail(files.log, 3, 1200)}"
    )


def stop(pid: int, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, then SIGKILL when it has not ended within `timeout`."""
    daemon.terminate(pid, timeout)
