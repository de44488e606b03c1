"""pdns_server: check the zone data, start in the foreground, adopt, reload the data, stop.

pdns_server runs as `pdns_server --config-dir=DIR` in a session of its own (a controller killed with SIGKILL
leaves it answering: fail static). It binds its address as root, chroots to DIR and drops to the `pdns` user;
its PID file and control socket are DIR's (`socket-dir=/` in the chroot). `pdns_control reload` makes the geoip
backend read zones.yaml again (a file it cannot parse is refused and the old data keeps serving). Never the
system's pdns instance: nothing here reads /etc/powerdns, and `make deps` keeps the Debian service stopped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .. import daemon
from ..daemon import CheckResult, read_pidfile
from ..daemon import alive as alive  # the engine asks its process module

DEFAULT_BINARY = shutil.which("pdns_server") or "/usr/sbin/pdns_server"
CONTROL = shutil.which("pdns_control") or "/usr/bin/pdns_control"
UTIL = shutil.which("pdnsutil") or "/usr/bin/pdnsutil"
CHECK_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class PowerDNSError(Exception):
    """pdns_server did not start, did not reload or did not stop."""


@dataclass(frozen=True)
class Files:
    """The engine's folder (the chroot) and its files."""

    dir: Path

    @property
    def config(self) -> Path:
        return self.dir / "pdns.conf"

    @property
    def zones(self) -> Path:
        return self.dir / "zones.yaml"

    @property
    def pid(self) -> Path:
        return self.dir / "pdns.pid"  # written by pdns_server (socket-dir=/ in the chroot)

    @property
    def log(self) -> Path:
        return self.dir / "pdns.log"

    @property
    def applied(self) -> Path:
        """SHA-256 of what the last commit made run (pdns.conf and the gslb section): adopting compares it."""
        return self.dir / "applied.sha256"


def check_zones(text: str, zones: list[str], util: str = UTIL) -> CheckResult:
    """Let PowerDNS's own geoip backend parse the zone data (pdnsutil list-all-zones on a scratch
    configuration): accepted when it loads and lists every zone."""
    with tempfile.TemporaryDirectory(prefix="pacslb-pdns-check-") as scratch:
        Path(scratch, "zones.yaml").write_text(text)
        Path(scratch, "pdns.conf").write_text(
            f"launch=geoip\ngeoip-zones-file={scratch}/zones.yaml\ngeoip-database-files=\nloglevel=3\n"
        )
        done = subprocess.run([util, f"--config-dir={scratch}", "list-all-zones"], capture_output=True, text=True,
                              timeout=CHECK_TIMEOUT)  # fmt: skip
    listed = {line.strip().removesuffix(".") for line in done.stdout.splitlines()}
    output = (done.stdout + done.stderr).strip()
    missing = [z for z in zones if z not in listed]
    if done.returncode != 0:
        return CheckResult(False, output)
    if missing:
        return CheckResult(False, f"zones not loaded: {', '.join(missing)}\n{output}")
    return CheckResult(True, output)


def command_line(files: Files, binary: str = DEFAULT_BINARY) -> list[str]:
    return [binary, f"--config-dir={files.dir}"]


def serves(pid: int, files: Files) -> bool:
    """PID is a live pdns_server run on this appliance's folder."""
    return daemon.runs(pid, "pdns_server", f"--config-dir={files.dir}")


def adopt(files: Files) -> int | None:
    """The PID of the pdns_server that already runs this appliance's folder, or None."""
    return daemon.adopt(files.pid, "pdns_server", f"--config-dir={files.dir}")


def control(files: Files, *command: str, timeout: float = 5.0) -> str:
    """One pdns_control command on the instance of this folder; its answer, or PowerDNSError."""
    try:
        done = subprocess.run([CONTROL, f"--socket-dir={files.dir}", *command], capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise PowerDNSError(f"pdns_control {' '.join(command)} did not answer within {timeout:g}s") from None
    if done.returncode != 0:
        raise PowerDNSError(f"pdns_control {' '.join(command)} failed: {(done.stdout + done.stderr).strip()}")
    return done.stdout.strip()


def start(files: Files, binary: str = DEFAULT_BINARY, timeout: float = 20.0) -> int:
    """Start pdns_server on `files.config`; return its PID once its control socket answers."""
    files.pid.unlink(missing_ok=True)
    popen = daemon.spawn(command_line(files, binary), files.log, files.dir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise PowerDNSError(f"pdns_server exited at start ({popen.returncode}): {daemon.tail(files.log)}")
        if read_pidfile(files.pid) == popen.pid:
            try:
                if control(files, "rping", timeout=2.0) == "PONG":
                    daemon.keep(popen)
                    return popen.pid
            except PowerDNSError:
                pass
        time.sleep(0.05)
    stop(popen.pid)
    raise PowerDNSError(f"pdns_server did not answer on its control socket within {timeout:g}s: {daemon.tail(files.log)}")


def reload(files: Files) -> None:
    """The geoip backend reads zones.yaml again (answers change without a restart)."""
    answer = control(files, "reload")
    if answer != "Ok":
        raise PowerDNSError(f"pdns_control reload answered {answer!r}")


def stop(pid: int, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, then SIGKILL when it has not ended within `timeout`."""
    daemon.terminate(pid, timeout)


def write_public(path: Path, text: str) -> None:
    """Write atomically, readable by the `pdns` user (it reads zones.yaml again after dropping root)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
