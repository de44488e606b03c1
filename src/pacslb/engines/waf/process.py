"""Apache for the WAF tier: directories, check, start in the foreground, adopt, graceful reload, stop.

Apache runs as `apache2 -f <state>/waf/apache.conf -DFOREGROUND` in a session of its own (a controller killed
with SIGKILL leaves it serving: fail static), never the system's apache2 (which `make deps` keeps stopped).
SIGUSR1 is a graceful restart: the parent reads the file again and replaces its workers while requests in
flight finish. A graceful restart that fails (a port taken, a module missing) makes the parent exit; the
engine then sees it dead and says why from the error log.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from .. import daemon
from ..daemon import CheckResult, alive, read_pidfile
from .paths import WafPaths
from .render import RUN_USER

DEFAULT_BINARY = shutil.which("apache2") or "/usr/sbin/apache2"
CHECK_TIMEOUT = 60.0
START_TIMEOUT = 60.0  # each policy includes its own copy of CRS: loading takes about 0.1 s a policy here
STOP_TIMEOUT = 10.0
READY = "resuming normal operations"


class ApacheError(Exception):
    """Apache refused its file, did not start, did not reload, or did not stop."""


def prepare(paths: WafPaths) -> None:
    """The state files' folder (root only) and the run folder the workers reach (root:www-data 0750, tmp 0700)."""
    paths.dir.mkdir(parents=True, exist_ok=True)
    paths.runtime.mkdir(mode=0o700, exist_ok=True)
    user = pwd.getpwnam(RUN_USER)
    group = grp.getgrnam(RUN_USER).gr_gid
    paths.run.parent.mkdir(mode=0o755, exist_ok=True)
    paths.run.mkdir(mode=0o750, exist_ok=True)
    os.chown(paths.run, 0, group)
    os.chmod(paths.run, 0o750)
    paths.tmp.mkdir(mode=0o700, exist_ok=True)
    os.chown(paths.tmp, user.pw_uid, user.pw_gid)


def remove_run(paths: WafPaths) -> None:
    """The run folder, once Apache is stopped: HAProxy stops before it (the reverse of the start order)."""
    shutil.rmtree(paths.run, ignore_errors=True)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Nothing listens on host:port (Apache could bind it)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def check(conf: Path, binary: str = DEFAULT_BINARY) -> CheckResult:
    """`apache2 -t -f CONF`: syntax, modules and every ModSecurity rule (it does not bind the ports)."""
    done = subprocess.run([binary, "-t", "-f", str(conf)], capture_output=True, text=True, timeout=CHECK_TIMEOUT)
    output = (done.stdout + done.stderr).strip()
    return CheckResult(done.returncode == 0, output)


def command_line(paths: WafPaths, binary: str = DEFAULT_BINARY) -> list[str]:
    return [binary, "-f", str(paths.config), "-DFOREGROUND"]


def serves(pid: int, paths: WafPaths) -> bool:
    """PID is a live Apache parent run on this appliance's file."""
    return daemon.runs(pid, "apache2", str(paths.config))


def adopt(paths: WafPaths) -> int | None:
    """The PID of the Apache that already runs this appliance's file, or None."""
    return daemon.adopt(paths.pid, "apache2", str(paths.config))


def _log_size(paths: WafPaths) -> int:
    try:
        return paths.error_log.stat().st_size
    except FileNotFoundError:
        return 0


def _log_since(paths: WafPaths, offset: int) -> str:
    try:
        with open(paths.error_log, "rb") as f:
            f.seek(offset)
            return f.read(1 << 20).decode(errors="replace")
    except FileNotFoundError:
        return ""


def _text_since(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(1 << 16).decode(errors="replace")
    except FileNotFoundError:
        return ""


def _errors(text: str) -> list[str]:
    lines = [line for line in text.splitlines() if ":notice]" not in line and line.strip()]
    return lines[-10:] or ["(nothing in Apache's error log)"]


def start(paths: WafPaths, binary: str = DEFAULT_BINARY, timeout: float = START_TIMEOUT) -> int:
    """Start Apache on `paths.config`; return its PID once it serves (its log says so)."""
    prepare(paths)
    offset = _log_size(paths)
    out_size = (paths.dir / "apache.stdout.log").stat().st_size if (paths.dir / "apache.stdout.log").exists() else 0
    popen = daemon.spawn(command_line(paths, binary), paths.dir / "apache.stdout.log", paths.dir)
    out_offset = out_size
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            # before its ErrorLog is open (a port taken, a file missing) Apache writes to its standard error
            said = _log_since(paths, offset) + _text_since(paths.dir / "apache.stdout.log", out_offset)
            raise ApacheError(f"Apache exited at start ({popen.returncode}): " + " | ".join(_errors(said)))
        if read_pidfile(paths.pid) == popen.pid and READY in _log_since(paths, offset):
            daemon.keep(popen)
            return popen.pid
        time.sleep(0.05)
    stop(popen.pid)
    raise ApacheError(f"Apache did not start within {timeout:g}s: " + " | ".join(_errors(_log_since(paths, offset))))


def reload(pid: int, paths: WafPaths, timeout: float = START_TIMEOUT) -> None:
    """A graceful restart (SIGUSR1), confirmed by the log; a parent that exits instead raises ApacheError."""
    offset = _log_size(paths)
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = _log_since(paths, offset)
        if not alive(pid):
            raise ApacheError("Apache exited on the new file: " + " | ".join(_errors(text)))
        if READY in text:
            return
        time.sleep(0.05)
    raise ApacheError(f"Apache did not confirm its graceful restart within {timeout:g}s")


def stop(pid: int, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM to the parent (it stops its workers), then SIGKILL to its session (it leads one)."""
    daemon.terminate(pid, timeout, kill="session")
