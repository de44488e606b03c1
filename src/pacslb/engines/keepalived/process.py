"""keepalived: check, start in the foreground, adopt, reload, stop; read the VRRP state changes.

keepalived runs as `keepalived -P -n -l -D -f CONF -p PIDFILE -r VRRP_PIDFILE` in a session of its
own (a controller killed with SIGKILL leaves it holding the floating IPs: fail static), in the network
namespace of the controller that starts it. SIGHUP reloads the file; SIGTERM makes the master send a
priority-0 advert (the backup takes over at once) and remove the floating IPs before it exits.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .. import daemon
from ..daemon import CheckResult, is_running, read_pidfile
from ..daemon import alive as alive  # the engine asks its process module
from .render import KeepalivedPaths

DEFAULT_BINARY = shutil.which("keepalived") or "/usr/sbin/keepalived"
CHECK_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class KeepalivedError(Exception):
    """keepalived refused its file, did not start, or did not stop."""


def check(conf: Path, binary: str = DEFAULT_BINARY) -> CheckResult:
    """`keepalived -t -f CONF` (in this network namespace: the interface must exist here)."""
    if not conf.is_file():  # keepalived -t exits 0 on a missing file
        return CheckResult(False, f"{conf} does not exist")
    done = subprocess.run([binary, "-t", "-f", str(conf)], capture_output=True, text=True, timeout=CHECK_TIMEOUT)
    output = (done.stdout + done.stderr).strip()
    return CheckResult(done.returncode == 0, output)


def command_line(paths: KeepalivedPaths, binary: str = DEFAULT_BINARY) -> list[str]:
    return [binary, "-P", "-n", "-l", "-D", "-f", str(paths.config), "-p", str(paths.pid), "-r", str(paths.vrrp_pid)]


def serves(pid: int, paths: KeepalivedPaths) -> bool:
    """PID is a live keepalived parent run on this appliance's file."""
    return daemon.runs(pid, "keepalived", str(paths.config))


def adopt(paths: KeepalivedPaths) -> int | None:
    """The PID of the keepalived that already runs this appliance's file, or None."""
    return daemon.adopt(paths.pid, "keepalived", str(paths.config))


def start(paths: KeepalivedPaths, binary: str = DEFAULT_BINARY, timeout: float = 10.0) -> int:
    """Start keepalived on `paths.config`; return its PID once its VRRP child runs."""
    paths.dir.mkdir(parents=True, exist_ok=True)
    remove_stale_pidfiles(paths)
    popen = daemon.spawn(command_line(paths, binary), paths.log, paths.dir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise KeepalivedError(f"keepalived exited at start ({popen.returncode}); see {paths.log}")
        vrrp = read_pidfile(paths.vrrp_pid)
        if read_pidfile(paths.pid) == popen.pid and vrrp is not None and is_running(vrrp):
            daemon.keep(popen)
            return popen.pid
        time.sleep(0.05)
    stop(popen.pid)
    raise KeepalivedError(f"keepalived did not start its VRRP process within {timeout:g}s; see {paths.log}")


def remove_stale_pidfiles(paths: KeepalivedPaths) -> None:
    """Pidfiles that name no live process. keepalived refuses to start (exit 0, "daemon is already running") while
    a pidfile names a process that `kill(pid, 0)` finds: a killed keepalived that nobody has reaped yet (a zombie
    whose new parent is slow to wait for it) is found, so a start right after a hard failover would fail."""
    for pidfile in (paths.pid, paths.vrrp_pid):
        pid = read_pidfile(pidfile)
        if pid is not None and not is_running(pid):
            pidfile.unlink(missing_ok=True)


def reload(pid: int) -> None:
    """SIGHUP: keepalived reads its file again (the VRRP state of an unchanged instance is kept)."""
    os.kill(pid, signal.SIGHUP)


def stop(pid: int, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM (a master sends priority 0 and releases the floating IPs), then SIGKILL to it and its VRRP child."""
    daemon.terminate(pid, timeout, kill="children")


def vrrp_pids(pid: int) -> list[int]:
    """The parent and its children (the VRRP process): what `kill -9` of a node's keepalived must reach."""
    return [pid, *daemon.children(pid)]


@dataclass(frozen=True)
class Transition:
    at: float
    state: str  # MASTER, BACKUP, FAULT, STOP (notify.sh); STOP, START (the controller: `mark`)
    priority: int | None


def mark(path: Path, state: str) -> None:
    """Append the controller's own line to the VRRP record: STOP just before it stops keepalived (the master's
    interval ends before the peer takes over), START just before it starts one afresh (whatever the keepalived
    before it was, it ended without a trace if no STOP precedes). ha/split_brain.py reads both."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(f"{time.time():.9f} {state}\n")


def read_events(path: Path, offset: int = 0) -> tuple[list[Transition], int]:
    """The state changes notify.sh appended since `offset`; returns them and the new offset."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], 0
    end = data.rfind(b"\n") + 1
    found = []
    for line in data[:end].decode(errors="replace").splitlines():
        parts = line.split()
        if len(parts) >= 2:
            try:
                found.append(
                    Transition(float(parts[0]), parts[1], int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else None)
                )
            except ValueError:
                continue
    return found, offset + end


def write_scripts(scripts: dict[Path, str]) -> None:
    for path, text in scripts.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)
