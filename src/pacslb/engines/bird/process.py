"""bird: check a configuration, start in the foreground, adopt, reconfigure, ask, stop.

bird runs as `bird -f -c <state>/bird/bird.conf -s <state>/bird/bird.ctl -P <state>/bird/bird.pid`, in a session of its
own (a controller killed with SIGKILL leaves it announcing: fail static). Never the system's instance: nothing here
reads /etc/bird, and `make deps` keeps Debian's service stopped.

Unprivileged where it can be: BIRD's own `-u bird` drops to the bird user, which could not read the state directory
(0750, root) again at `birdc configure`; so it keeps uid 0 (the owner of its files) but runs with only the
capabilities BGP and BFD need (CAP_NET_BIND_SERVICE: port 179 and BFD's; CAP_NET_RAW), through `setpriv`: no
CAP_NET_ADMIN (it exports nothing to the kernel), no CAP_DAC_OVERRIDE, no CAP_SYS_ADMIN. Dropping them needs
CAP_SETPCAP; a controller without it (a systemd unit that bounds it out) starts bird with its own bounded set.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .. import daemon
from ..daemon import CheckResult, read_pidfile
from ..daemon import alive as alive  # the engine asks its process module
from .render import CONF_FILE, ROUTES_FILES

DEFAULT_BINARY = shutil.which("bird") or "/usr/sbin/bird"
CLIENT = shutil.which("birdc") or "/usr/sbin/birdc"  # for people; the engine speaks on the socket itself
MAX_REPLY_LINES = 100_000  # a `show route` of every VIP (the model bounds them far below)
MAX_REPLY_LINE = 64 * 1024
SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"
CAPABILITIES = ("net_bind_service", "net_raw")
CAP_SETPCAP = 8  # linux/capability.h: needed to drop capabilities from a child's bounding set
CHECK_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class BirdError(Exception):
    """bird did not start, did not take its configuration or did not stop."""


@dataclass(frozen=True)
class Files:
    """The engine's folder and its files."""

    dir: Path

    @property
    def config(self) -> Path:
        return self.dir / CONF_FILE

    def routes(self, name: str) -> Path:
        return self.dir / name

    @property
    def socket(self) -> Path:
        return self.dir / "bird.ctl"

    @property
    def pid(self) -> Path:
        return self.dir / "bird.pid"

    @property
    def log(self) -> Path:
        return self.dir / "bird.log"

    @property
    def applied(self) -> Path:
        """SHA-256 of the bird.conf the last commit made run: adopting compares it."""
        return self.dir / "applied.sha256"


def check(conf_for, routes: dict[str, str], binary: str = DEFAULT_BINARY) -> CheckResult:
    """`bird -p` (parse only) on a scratch copy: `conf_for(folder)` renders bird.conf with its includes in that folder."""
    with tempfile.TemporaryDirectory(prefix="pacslb-bird-check-") as scratch:
        for name, text in routes.items():
            Path(scratch, name).write_text(text)
        conf = Path(scratch, CONF_FILE)
        conf.write_text(conf_for(PurePosixPath(scratch)))
        try:
            done = subprocess.run([binary, "-p", "-c", str(conf)], capture_output=True, text=True, timeout=CHECK_TIMEOUT)
        except subprocess.TimeoutExpired:
            return CheckResult(False, f"bird -p did not finish within {CHECK_TIMEOUT:g}s")
    output = (done.stdout + done.stderr).strip().replace(scratch, "<new>")
    return CheckResult(done.returncode == 0, output)


def can_drop_capabilities(status: str | None = None) -> bool:
    """Whether this process may shrink a child's capability bounding set (CAP_SETPCAP in its effective set). A
    controller run by a systemd unit whose CapabilityBoundingSet leaves CAP_SETPCAP out cannot: bird then runs with
    the unit's bounded set, as the controller does."""
    try:
        text = status if status is not None else Path("/proc/self/status").read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> CAP_SETPCAP & 1)
    return False


def command_line(files: Files, binary: str = DEFAULT_BINARY, drop: bool | None = None) -> list[str]:
    bird = [binary, "-f", "-c", str(files.config), "-s", str(files.socket), "-P", str(files.pid)]
    if not (can_drop_capabilities() if drop is None else drop):
        return bird
    bounding = ",".join(["-all", *(f"+{c}" for c in CAPABILITIES)])
    return [SETPRIV, f"--bounding-set={bounding}", "--inh-caps=-all", "--", *bird]


def adopt(files: Files) -> int | None:
    """The PID of the bird that already runs this appliance's folder, or None."""
    return daemon.adopt(files.pid, "bird", str(files.config))


def birdc(files: Files, *command: str, timeout: float = 5.0) -> str:
    """One command on the control socket of this folder's bird, spoken as birdc speaks it (no birdc process: the
    appliance asks every half second); the answer's text without its reply codes, or BirdError."""
    line = " ".join(command)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(files.socket))
            stream = sock.makefile("rwb")
            _reply(stream)  # the banner: 0001 BIRD 2.x ready.
            stream.write(line.encode() + b"\n")
            stream.flush()
            code, text = _reply(stream)
    except (OSError, ValueError) as exc:  # socket.timeout is an OSError
        raise BirdError(f"bird's control socket ({line}): {exc}") from None
    if code >= 8000:  # 8xxx: run-time errors, 9xxx: parse errors
        raise BirdError(f"bird refused {line!r}: {text}")
    return text


def _reply(stream) -> tuple[int, str]:
    """One reply: lines 'CODE-text' and ' text' go on, 'CODE text' ends it (BIRD's doc/prog: the CLI protocol)."""
    lines: list[str] = []
    for _ in range(MAX_REPLY_LINES):
        raw = stream.readline(MAX_REPLY_LINE)
        if not raw:
            raise ValueError("bird closed the control socket in the middle of an answer")
        text = raw.decode(errors="replace").rstrip("\n")
        if text[:4].isdigit() and text[4:5] in ("-", " "):
            lines.append(text[5:])
            if text[4] == " ":
                return int(text[:4]), "\n".join(lines)
        else:
            lines.append(text[1:])
    raise ValueError(f"an answer longer than {MAX_REPLY_LINES} lines")


def start(files: Files, binary: str = DEFAULT_BINARY, timeout: float = 20.0) -> int:
    """Start bird on `files.config`; return its PID once its control socket answers."""
    files.pid.unlink(missing_ok=True)
    popen = daemon.spawn(command_line(files, binary), files.log, files.dir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise BirdError(f"bird exited at start ({popen.returncode}): {daemon.tail(files.log)}")
        if read_pidfile(files.pid) == popen.pid:  # setpriv execs bird: the same PID
            try:
                birdc(files, "show", "status", timeout=2.0)
            except BirdError:
                pass
            else:
                daemon.keep(popen)
                return popen.pid
        time.sleep(0.05)
    stop(popen.pid)
    raise BirdError(f"bird did not answer on its control socket within {timeout:g}s: {daemon.tail(files.log)}")


def configure(files: Files) -> None:
    """bird reads bird.conf (and the route files it includes) again; the BGP sessions stay up when only routes changed."""
    answer = birdc(files, "configure", timeout=10.0)
    if "Reconfigured" not in answer and "Reconfiguration in progress" not in answer:
        raise BirdError(f"birdc configure answered: {answer}")


def stop(pid: int, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM (bird closes its sessions with a Cease: the routers withdraw at once), then SIGKILL after `timeout`."""
    daemon.terminate(pid, timeout)


def write(path: Path, text: str) -> None:
    """Write atomically (bird reads its files as root, with no DAC override: root's 0640 is enough)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o640)
    os.replace(tmp, path)


__all__ = ["ROUTES_FILES", "BirdError", "Files", "adopt", "birdc", "check", "configure", "start", "stop", "write"]
