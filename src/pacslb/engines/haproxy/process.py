"""HAProxy's master-worker process: check, start, find and adopt, reload, stop.

HAProxy runs as `haproxy -W -S <master.sock> -f <cfg> -p <pidfile>`: a master that stays in the
foreground of whoever started it, and workers it forks. The master is started in a session of its
own (`start_new_session`), so that a controller killed with SIGKILL takes nothing with it: HAProxy
keeps serving, and the next controller adopts the master it finds through the pidfile, /proc and
the master CLI (DESIGN.md, principle 5: fail static).

The master stays root (it re-reads the file on reload and binds every socket); run by root, the
workers chroot to the empty StatePaths.haproxy_chroot and drop to WORKER_USER and WORKER_GROUP, as
the rendered `global` section says (render.py). `prepare_chroot` makes that directory before each
start and reload; `worker_identity_problems` says when the user or group is missing.

HAProxy 2.6's `reload` on the master CLI prints nothing; `reload` here confirms the outcome with
`show proc` (the master's reload counter moves, '[failed: 0]', and a new worker exists). A failed
reload leaves the old worker serving.

Pure parts (`parse_show_proc`, `command_line`) do no I/O. The rest touch processes and sockets and
are tested against the real HAProxy in the end-to-end tests.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from ...paths import StatePaths
from ..daemon import all_pids, children, is_running, proc_cmdline, proc_ppid, proc_state, read_pidfile  # noqa: F401 - named here too
from .runtime import RuntimeAPI, RuntimeAPIError, send_command
from .server_state import rewrite

DEFAULT_BINARY = "haproxy"
START_TIMEOUT = 20.0
RELOAD_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
CHECK_TIMEOUT = 60.0
MASTER_SOCKET_MODE = "600"
# The identity HAProxy's workers drop to (the master stays root): Debian's haproxy package creates both.
WORKER_USER = "haproxy"
WORKER_GROUP = "haproxy"


class HAProxyError(Exception):
    """HAProxy could not be checked, started, reloaded or stopped; the message says why."""


class StartError(HAProxyError):
    pass


class ReloadError(HAProxyError):
    pass


# HAProxy binds a Unix socket under a temporary name (path + '.<pid>.tmp') and renames it: its paths
# must leave room for that within sun_path.
MAX_SOCKET_PATH = 97


def socket_path_problems(paths: StatePaths) -> list[str]:
    """Sockets of the state directory whose path is too long for HAProxy to bind."""
    return [
        f"{path} is {len(str(path))} characters long; HAProxy binds Unix sockets of at most "
        f"{MAX_SOCKET_PATH}: choose a shorter state directory"
        for path in (paths.haproxy_master_socket, paths.haproxy_admin_socket)
        if len(str(path)) > MAX_SOCKET_PATH
    ]


def worker_identity_problems(user: str = WORKER_USER, group: str = WORKER_GROUP) -> list[str]:
    """What keeps HAProxy's workers from dropping to `user` and `group`: either one missing on this machine."""
    problems = []
    try:
        pwd.getpwnam(user)
    except KeyError:
        problems.append(f"the user {user!r} that HAProxy's workers run as does not exist: install Debian's haproxy "
                        f"package, or create it (useradd --system --no-create-home --shell /usr/sbin/nologin {user})")  # fmt: skip
    try:
        grp.getgrnam(group)
    except KeyError:
        problems.append(f"the group {group!r} that HAProxy's workers run as does not exist: install Debian's haproxy "
                        f"package, or create it (groupadd --system {group})")  # fmt: skip
    return problems


def prepare_chroot(paths: StatePaths) -> None:
    """Make the directory HAProxy's workers chroot to: empty, owned by root, mode 0755, a real directory.

    Owned by root and not writable by the workers' user, so a worker taken over can put nothing there;
    made before every start and reload, because a worker that cannot chroot exits at once. Raises
    HAProxyError when something other than a directory has the name.
    """
    path = paths.haproxy_chroot
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o755)
    found = os.lstat(path)
    if not stat.S_ISDIR(found.st_mode):  # a symlink too: the chroot would be wherever it points
        raise HAProxyError(f"{path} must be a directory (HAProxy's workers are chrooted to it): remove what is there")
    if os.geteuid() == 0 and (found.st_uid, found.st_gid) != (0, 0):
        os.chown(path, 0, 0, follow_symlinks=False)
    if stat.S_IMODE(found.st_mode) != 0o755:
        os.chmod(path, 0o755)


# --- show proc -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcEntry:
    """One line of the master CLI's `show proc`."""

    pid: int
    kind: str  # 'master', 'worker' or 'program'
    reloads: int  # the master: reloads since start; a worker: reloads it has survived (0 = current)
    failed: int | None  # the master only: failed loads since the last good one
    uptime: str
    version: str


@dataclass(frozen=True)
class ProcTable:
    master: ProcEntry
    workers: tuple[ProcEntry, ...] = ()

    @property
    def current_workers(self) -> tuple[ProcEntry, ...]:
        """Workers of the configuration loaded last (the others finish their sessions and leave)."""
        return tuple(w for w in self.workers if w.reloads == 0)

    @property
    def old_workers(self) -> tuple[ProcEntry, ...]:
        return tuple(w for w in self.workers if w.reloads > 0)


_PROC_LINE = re.compile(
    r"^(?P<pid>\d+)\s+(?P<kind>master|worker|program)\s+(?P<reloads>\d+)(?:\s+\[failed:\s*(?P<failed>\d+)\])?"
    r"\s+(?P<uptime>\S+)\s*(?P<version>\S*)"
)


def parse_show_proc(text: str) -> ProcTable:
    """`show proc` text to a table. Raises HAProxyError when it is not `show proc` output."""
    master: ProcEntry | None = None
    workers: list[ProcEntry] = []
    for line in text.splitlines():
        match = _PROC_LINE.match(line.strip())
        if not match:
            continue
        entry = ProcEntry(
            pid=int(match["pid"]),
            kind=match["kind"],
            reloads=int(match["reloads"]),
            failed=int(match["failed"]) if match["failed"] is not None else None,
            uptime=match["uptime"],
            version=match["version"],
        )
        if entry.kind == "master":
            master = entry
        elif entry.kind == "worker":
            workers.append(entry)
    if master is None:
        raise HAProxyError(f"not 'show proc' output: {text.strip()[:200]!r}")
    return ProcTable(master, tuple(workers))


# --- check ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    output: str  # HAProxy's own words: alerts when not ok, warnings either way

    @property
    def messages(self) -> list[str]:
        """The [ALERT] and [WARNING] lines, without the process id prefix."""
        found = []
        for line in self.output.splitlines():
            m = re.match(r"^\[(ALERT|WARNING)\]\s+\(\d+\)\s*:\s*(.*)$", line.strip())
            if m:
                found.append(f"{m[1].lower()}: {m[2]}")
        return found


def binary_path(binary: str = DEFAULT_BINARY) -> str:
    found = shutil.which(binary)
    if found is None:
        raise HAProxyError(f"{binary!r} is not installed or not on PATH (Debian: apt-get install haproxy)")
    return found


def check(config_path: Path, binary: str = DEFAULT_BINARY, timeout: float = CHECK_TIMEOUT) -> CheckResult:
    """`haproxy -c -f FILE`: does HAProxy accept this configuration file?"""
    try:
        done = subprocess.run(
            [binary_path(binary), "-c", "-f", str(config_path)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return CheckResult(False, f"haproxy -c did not finish within {timeout:g}s")
    return CheckResult(done.returncode == 0, (done.stdout + done.stderr).strip())


# --- /proc ---------------------------------------------------------------------------------------


def _option(argv: list[str], name: str) -> str | None:
    """The value after `name` in argv (the last one if repeated)."""
    value = None
    for i, arg in enumerate(argv[:-1]):
        if arg == name:
            value = argv[i + 1]
    return value


def serves_state_dir(argv: list[str], paths: StatePaths) -> bool:
    """Whether a command line is HAProxy run for this state directory (by its master socket)."""
    if not argv or "haproxy" not in Path(argv[0]).name:
        return False
    master_socket = _option(argv, "-S")
    return master_socket is not None and master_socket.split(",")[0] == str(paths.haproxy_master_socket)


def find_masters(paths: StatePaths) -> list[int]:
    """Live HAProxy masters of this state directory found in /proc (workers are left out: their parent is one)."""
    ours = {p for p in all_pids() if is_running(p) and serves_state_dir(proc_cmdline(p), paths)}
    return sorted(p for p in ours if proc_ppid(p) not in ours)


def masters_of(paths: StatePaths) -> list[int]:
    """Every live master of this state directory: the pidfile's (if it is one) and any found in /proc."""
    found = find_masters(paths)
    pid = read_pidfile(paths.haproxy_pid)
    if pid is not None and pid not in found and is_running(pid) and serves_state_dir(proc_cmdline(pid), paths):
        found.insert(0, pid)
    return found


# --- the master ----------------------------------------------------------------------------------


def command_line(paths: StatePaths, binary: str = DEFAULT_BINARY) -> list[str]:
    """How pacslb runs HAProxy: master-worker, master CLI on a private socket, master PID in the pidfile."""
    return [
        binary,
        "-W",
        "-S",
        f"{paths.haproxy_master_socket},mode,{MASTER_SOCKET_MODE}",
        "-f",
        str(paths.haproxy_config),
        "-p",
        str(paths.haproxy_pid),
    ]


def master_command(paths: StatePaths, command: str, timeout: float = 5.0) -> str:
    """One command on the master CLI (`show proc`, `reload`, or `@1 <command>` for the current worker)."""
    return send_command(paths.haproxy_master_socket, command, timeout)


def show_proc(paths: StatePaths, timeout: float = 5.0) -> ProcTable:
    return parse_show_proc(master_command(paths, "show proc", timeout))


@dataclass
class Master:
    """A running HAProxy master: started by this process (`popen` set) or adopted (found running)."""

    paths: StatePaths
    pid: int
    popen: subprocess.Popen | None = None
    adopted: bool = False
    started_at: float = field(default_factory=time.time)

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None  # also reaps a child that ended
        return is_running(self.pid)

    @property
    def exit_status(self) -> str:
        """How it ended, in words (known only for a master this process started)."""
        if self.popen is None or self.popen.returncode is None:
            return "unknown status (not our child)" if self.popen is None else "still running"
        code = self.popen.returncode
        if code < 0:
            try:
                return f"signal {signal.Signals(-code).name}"
            except ValueError:
                return f"signal {-code}"
        return f"exit code {code}"

    def show_proc(self, timeout: float = 5.0) -> ProcTable:
        return show_proc(self.paths, timeout)

    def workers(self) -> list[int]:
        return children(self.pid)


def _log_tail(log_path: Path, offset: int, limit: int = 4000) -> str:
    try:
        with open(log_path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    text = text.strip()
    return text[-limit:]


def _hints(text: str) -> str:
    """Advice for failures whose cause HAProxy's own words leave unclear."""
    hints = []
    if "Cannot raise FD limit" in text:
        hints.append(
            "hint: HAProxy needs about two file descriptors per connection; lower settings.max_connections "
            "or raise the open-files limit (ulimit -n, LimitNOFILE)"
        )
    if "Address already in use" in text:
        hints.append("hint: another process listens on a virtual service's address and port")
    if "Cannot assign requested address" in text:
        hints.append(
            "hint: a virtual service's address is on no interface of this machine: add it, or, for a floating "
            "address held by the HA peer, allow it with sysctl net.ipv4.ip_nonlocal_bind=1"
        )
    return "".join(f"\n{h}" for h in hints)


def start(
    paths: StatePaths,
    binary: str = DEFAULT_BINARY,
    log_path: Path | None = None,
    timeout: float = START_TIMEOUT,
    wait_admin_socket: bool = True,
) -> Master:
    """Start a master on `paths.haproxy_config` and wait until it serves.

    HAProxy's stdout and stderr go to `log_path` (default `paths.haproxy_log`), opened for appending,
    so its output survives the controller. Ready means: the master CLI answers with this master and a
    worker, and (with `wait_admin_socket`) the stats socket answers from that worker.
    Raises StartError with HAProxy's own messages when it exits or does not get ready in time.
    """
    log_path = log_path or paths.haproxy_log
    paths.haproxy_dir.mkdir(parents=True, exist_ok=True)
    prepare_chroot(paths)
    argv = command_line(paths, binary_path(binary))
    with open(log_path, "ab") as log:
        offset = log.tell()
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=paths.haproxy_dir,
            start_new_session=True,  # never in the controller's process group or session
            close_fds=True,
        )
    master = Master(paths, popen.pid, popen)
    deadline = time.monotonic() + timeout
    last_error = "no answer yet"
    while True:
        if popen.poll() is not None:
            output = _log_tail(log_path, offset) or "(no output)"
            raise StartError(f"HAProxy exited while starting ({master.exit_status}):\n{output}{_hints(output)}")
        try:
            table = show_proc(paths, timeout=1.0)
            if table.master.pid != popen.pid:
                last_error = f"the master CLI answers for another master (PID {table.master.pid})"
            elif not table.current_workers:
                last_error = "the master has no worker yet"
            elif wait_admin_socket:
                pid = int(RuntimeAPI(paths.haproxy_admin_socket, timeout=1.0).show_info()["Pid"])
                if pid in {w.pid for w in table.current_workers}:
                    return master
                last_error = f"the stats socket answers for PID {pid}, not for the new worker"
            else:
                return master
        except (RuntimeAPIError, HAProxyError, ValueError, KeyError) as exc:
            last_error = str(exc)
        if time.monotonic() > deadline:
            stop(master, timeout=5.0)
            raise StartError(f"HAProxy did not get ready within {timeout:g}s ({last_error}):\n{_log_tail(log_path, offset)}")
        time.sleep(0.05)


def adopt(paths: StatePaths) -> Master | None:
    """Find a master serving this state directory and take it over, or None.

    The candidate comes from the pidfile, else from /proc. It is adopted when it lives (not a zombie),
    its command line names this state directory's master socket, and that socket answers `show proc`
    with the candidate as the master.
    """
    candidates: list[int] = []
    pid = read_pidfile(paths.haproxy_pid)
    if pid is not None:
        candidates.append(pid)
    candidates += [p for p in find_masters(paths) if p not in candidates]
    for candidate in candidates:
        if not is_running(candidate) or not serves_state_dir(proc_cmdline(candidate), paths):
            continue
        try:
            table = show_proc(paths, timeout=2.0)
        except (RuntimeAPIError, HAProxyError):
            continue
        if table.master.pid == candidate:
            return Master(paths, candidate, None, adopted=True)
    return None


def save_server_state(paths: StatePaths, timeout: float = 5.0) -> bool:
    """Write `show servers state` to the server-state-file, so a reload keeps runtime states and weights.

    HAProxy reads the file (`load-server-state-from-file`) but never writes it. Returns False, and
    leaves the file alone, when the stats socket does not answer.
    """
    try:
        text = RuntimeAPI(paths.haproxy_admin_socket, timeout=timeout).command("show servers state")
    except RuntimeAPIError:
        return False
    if not text.startswith("1\n"):
        return False
    temp = paths.haproxy_server_state.with_name(f".{paths.haproxy_server_state.name}.{os.getpid()}.tmp")
    temp.write_text(rewrite(text, {}))  # states as they run; only the agent port of agent-less servers dropped
    os.replace(temp, paths.haproxy_server_state)
    return True


def reload(
    paths: StatePaths, timeout: float = RELOAD_TIMEOUT, log_path: Path | None = None, save_state: bool = True
) -> ProcTable:
    """Reload the master on the configuration file on disk and confirm it with `show proc`.

    Real-server states and weights set at runtime are saved to the server-state-file first, so that
    the new workers start from them (`save_state=False` when the caller has written that file itself).

    Success: the master's reload counter moved, it reports no failed load, and a worker that was not
    there before serves. Raises ReloadError otherwise (the old worker keeps serving), with HAProxy's
    messages from its log.
    """
    log_path = log_path or paths.haproxy_log
    try:
        offset = log_path.stat().st_size
    except OSError:
        offset = 0
    before = show_proc(paths)
    old = {w.pid for w in before.workers}
    prepare_chroot(paths)  # the new workers chroot to it
    if save_state:
        save_server_state(paths)
    try:
        master_command(paths, "reload", timeout=timeout)
    except RuntimeAPIError as exc:
        if "refuses" in str(exc) or "does not exist" in str(exc):
            raise ReloadError(f"cannot ask HAProxy to reload: {exc}") from None
        # The master re-executes itself and closes the connection: an incomplete answer is normal.
    deadline = time.monotonic() + timeout
    last: ProcTable | None = None
    while time.monotonic() < deadline:
        try:
            last = show_proc(paths, timeout=2.0)
        except (RuntimeAPIError, HAProxyError):
            time.sleep(0.05)  # the master is re-executing; its CLI comes back
            continue
        if last.master.reloads > before.master.reloads:
            if last.master.failed:
                raise ReloadError(
                    "HAProxy refused the new configuration; the previous one keeps serving:\n"
                    + (_log_tail(log_path, offset) or "(no output)")
                )
            if any(w.pid not in old for w in last.current_workers):
                return last
        time.sleep(0.05)
    state = f"show proc: master reloads {last.master.reloads}, workers {[w.pid for w in last.workers]}" if last else "no answer"
    raise ReloadError(f"HAProxy did not confirm the reload within {timeout:g}s ({state}):\n{_log_tail(log_path, offset)}")


def _wait_gone(pids: list[int], popen: subprocess.Popen | None, deadline: float) -> bool:
    while True:
        if popen is not None:
            popen.poll()
        if not any(is_running(p) for p in pids):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def stop(master: Master | int, timeout: float = STOP_TIMEOUT) -> None:
    """Stop a master and its workers: SIGTERM (workers stop at once), then SIGKILL to the process group.

    Takes a Master or a recorded PID. Returns when none of them runs any more (zombies count as gone:
    PID 1 reaps an adopted master late). Raises HAProxyError if something survives SIGKILL.
    """
    pid = master.pid if isinstance(master, Master) else master
    popen = master.popen if isinstance(master, Master) else None
    if not is_running(pid):
        if popen is not None:
            popen.poll()
        return
    workers = children(pid)
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    if _wait_gone([pid, *workers], popen, time.monotonic() + timeout):
        return
    # Still there: the master was started in its own session, so its process group holds just HAProxy.
    for target in [pid, *workers]:
        try:
            os.kill(target, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if not _wait_gone([pid, *workers], popen, time.monotonic() + 5.0):
        raise HAProxyError(f"HAProxy (PID {pid}) survives SIGKILL")
