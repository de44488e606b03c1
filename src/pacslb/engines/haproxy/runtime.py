"""HAProxy's runtime API (the stats socket at level admin): a small client and pure parsers.

The parsers (`parse_stat`, `parse_servers_state`, `check_reply`) take text and return typed rows;
they do no I/O and are unit tested on captured output. `RuntimeAPI` is the thin shell that owns the
socket: one connection per command, the write side shut down so that HAProxy answers and closes.

This module speaks HAProxy's words (frontend, backend, server); callers outside the engine package
translate them into virtual services and real servers.
"""

from __future__ import annotations

import csv
import io
import re
import socket
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Literal

DEFAULT_TIMEOUT = 5.0
_MAX_REPLY = 64 * 1024 * 1024  # a `show stat` of thousands of servers stays far below this


class RuntimeAPIError(Exception):
    """The runtime API could not be reached, or refused a command (the message says which)."""


# --- transport -----------------------------------------------------------------------------------


def send_command(socket_path: Path | str, command: str, timeout: float = DEFAULT_TIMEOUT, payload: str | None = None) -> str:
    """Send one command to a HAProxy CLI socket (stats socket or master CLI) and return the whole reply.

    The connection is closed on our side after the command (non-interactive mode): HAProxy then
    answers and closes. A `payload` (a certificate, say) follows the command as HAProxy's `<<` block,
    ended by an empty line. Raises RuntimeAPIError when the socket cannot be reached or times out.
    """
    if "\n" in command or "\r" in command:
        raise ValueError("a runtime API command is one line")
    wire = command.encode() + b"\n"
    if payload is not None:
        if "\n\n" in payload.strip("\n"):
            raise ValueError("a runtime API payload has no empty line (it would end the payload early)")
        wire = command.encode() + b" <<\n" + payload.strip("\n").encode() + b"\n\n"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(socket_path))
            sock.sendall(wire)
            sock.shutdown(socket.SHUT_WR)
            chunks: list[bytes] = []
            size = 0
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
                size += len(data)
                if size > _MAX_REPLY:
                    raise RuntimeAPIError(f"{socket_path}: reply to {command!r} is larger than {_MAX_REPLY} bytes")
        except FileNotFoundError:
            raise RuntimeAPIError(f"{socket_path} does not exist (is HAProxy running?)") from None
        except ConnectionRefusedError:
            raise RuntimeAPIError(f"{socket_path} refuses connections (HAProxy is not listening on it)") from None
        except socket.timeout:
            raise RuntimeAPIError(f"{socket_path}: no complete answer to {command!r} within {timeout:g}s") from None
        except OSError as exc:
            raise RuntimeAPIError(f"{socket_path}: {exc.strerror or exc}") from None
    finally:
        sock.close()
    return b"".join(chunks).decode("utf-8", errors="replace")


def check_reply(command: str, reply: str) -> str:
    """A state-changing command succeeded when HAProxy answers with nothing but blank lines.

    Anything else is its error message (for example 'No such server.'); raise it with the command.
    """
    text = reply.strip()
    if text:
        raise RuntimeAPIError(f"HAProxy refused {command!r}: {text}")
    return text


# --- show stat -----------------------------------------------------------------------------------


class ProxyKind(str, Enum):
    """The `type` column of `show stat`."""

    FRONTEND = "frontend"
    BACKEND = "backend"
    SERVER = "server"
    LISTENER = "listener"


_KIND_BY_CODE = {"0": ProxyKind.FRONTEND, "1": ProxyKind.BACKEND, "2": ProxyKind.SERVER, "3": ProxyKind.LISTENER}


def _int(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class StatRow:
    """One line of `show stat`, with the columns pacslb uses typed and the rest kept in `fields`."""

    proxy: str  # pxname
    name: str  # svname: FRONTEND, BACKEND, or the server / listener name
    kind: ProxyKind
    status: str  # e.g. 'UP', 'DOWN 1/2', 'DRAIN', 'MAINT', 'no check', 'OPEN'
    sessions_current: int = 0  # scur
    sessions_max: int = 0  # smax
    sessions_limit: int | None = None  # slim
    sessions_total: int = 0  # stot
    bytes_in: int = 0
    bytes_out: int = 0
    queue_current: int = 0  # qcur
    weight: int | None = None  # effective weight
    user_weight: int | None = None  # uweight: the weight set by configuration or `set server weight`
    active: bool | None = None  # act: an active (non-backup) server
    backup: bool | None = None  # bck
    check_status: str | None = None  # e.g. 'L7OK', 'L4CON', '* L7OK' while a check runs
    check_code: int | None = None  # HTTP status of the last HTTP check
    check_duration_ms: int | None = None
    check_description: str | None = None  # check_desc, e.g. 'Layer7 check passed'
    check_info: str | None = None  # last_chk: the last check's own words, e.g. 'Connection refused'
    check_failures: int | None = None  # chkfail
    check_downs: int | None = None  # chkdown: UP -> DOWN transitions
    last_change_s: int | None = None  # lastchg: seconds since the last state change
    downtime_s: int | None = None
    address: str | None = None  # addr: 'ip:port' of a server
    mode: str | None = None  # 'http' or 'tcp'
    fields: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def checked(self) -> bool:
        """Whether HAProxy health-checks this server."""
        return self.kind is ProxyKind.SERVER and self.status != "no check" and bool(self.check_status)


def parse_stat(text: str) -> list[StatRow]:
    """`show stat` CSV to rows. The header line starts with '# '; unknown columns are kept in `fields`.

    Raises RuntimeAPIError when the text is not `show stat` output (for example an error message).
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("# "):
        raise RuntimeAPIError(f"not 'show stat' output: {text.strip()[:200]!r}")
    header = [name.strip() for name in lines[0][2:].split(",")]
    rows: list[StatRow] = []
    for values in csv.reader(io.StringIO("\n".join(lines[1:]))):
        raw = {name: value for name, value in zip(header, values, strict=False) if name and name != "-"}
        kind = _KIND_BY_CODE.get(raw.get("type", ""))
        if kind is None:
            continue
        act, bck = _int(raw.get("act")), _int(raw.get("bck"))
        rows.append(
            StatRow(
                proxy=raw.get("pxname", ""),
                name=raw.get("svname", ""),
                kind=kind,
                status=raw.get("status", ""),
                sessions_current=_int(raw.get("scur")) or 0,
                sessions_max=_int(raw.get("smax")) or 0,
                sessions_limit=_int(raw.get("slim")),
                sessions_total=_int(raw.get("stot")) or 0,
                bytes_in=_int(raw.get("bin")) or 0,
                bytes_out=_int(raw.get("bout")) or 0,
                queue_current=_int(raw.get("qcur")) or 0,
                weight=_int(raw.get("weight")),
                user_weight=_int(raw.get("uweight")),
                active=None if kind is not ProxyKind.SERVER or act is None else act > 0,
                backup=None if kind is not ProxyKind.SERVER or bck is None else bck > 0,
                check_status=raw.get("check_status") or None,
                check_code=_int(raw.get("check_code")),
                check_duration_ms=_int(raw.get("check_duration")),
                check_description=raw.get("check_desc") or None,
                check_info=raw.get("last_chk") or None,
                check_failures=_int(raw.get("chkfail")),
                check_downs=_int(raw.get("chkdown")),
                last_change_s=_int(raw.get("lastchg")),
                downtime_s=_int(raw.get("downtime")),
                address=raw.get("addr") or None,
                mode=raw.get("mode") or None,
                fields=raw,
            )
        )
    return rows


# --- show servers state --------------------------------------------------------------------------


class OperationalState(int, Enum):
    """srv_op_state of `show servers state`."""

    STOPPED = 0
    STARTING = 1
    RUNNING = 2
    STOPPING = 3


class AdminFlag(int, Enum):
    """Bits of srv_admin_state of `show servers state`."""

    FORCED_MAINT = 0x01  # set server state maint / disable server
    INHERITED_MAINT = 0x02  # tracked server in maintenance
    CONFIG_MAINT = 0x04  # 'disabled' in the configuration
    FORCED_DRAIN = 0x08  # set server state drain
    INHERITED_DRAIN = 0x10
    RESOLVER_MAINT = 0x20  # DNS resolution failed
    HOSTNAME_MAINT = 0x40
    CONFIG_DRAIN = 0x80  # weight 0 in the configuration


@dataclass(frozen=True)
class ServerStateRow:
    """One server of `show servers state` (format version 1)."""

    backend_id: int
    backend: str
    server_id: int
    server: str
    address: str
    operational_state: OperationalState
    admin_flags: int
    user_weight: int
    initial_weight: int
    seconds_since_change: int
    port: int | None
    fields: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def maintenance(self) -> bool:
        return bool(
            self.admin_flags
            & (
                AdminFlag.FORCED_MAINT
                | AdminFlag.INHERITED_MAINT
                | AdminFlag.CONFIG_MAINT
                | AdminFlag.RESOLVER_MAINT
                | AdminFlag.HOSTNAME_MAINT
            )
        )

    @property
    def draining(self) -> bool:
        return bool(self.admin_flags & (AdminFlag.FORCED_DRAIN | AdminFlag.INHERITED_DRAIN | AdminFlag.CONFIG_DRAIN))


def parse_servers_state(text: str) -> list[ServerStateRow]:
    """`show servers state` to rows: a version line ('1'), a '# ' header, then space-separated values."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or lines[0].strip() != "1":
        raise RuntimeAPIError(f"not 'show servers state' output (format 1): {text.strip()[:200]!r}")
    header: list[str] = []
    rows: list[ServerStateRow] = []
    for line in lines[1:]:
        if line.startswith("#"):
            header = line.lstrip("#").split()
            continue
        values = line.split()
        raw = dict(zip(header, values, strict=False))
        try:
            rows.append(
                ServerStateRow(
                    backend_id=int(raw["be_id"]),
                    backend=raw["be_name"],
                    server_id=int(raw["srv_id"]),
                    server=raw["srv_name"],
                    address=raw["srv_addr"],
                    operational_state=OperationalState(int(raw["srv_op_state"])),
                    admin_flags=int(raw["srv_admin_state"]),
                    user_weight=int(raw["srv_uweight"]),
                    initial_weight=int(raw["srv_iweight"]),
                    seconds_since_change=int(raw["srv_time_since_last_change"]),
                    port=_int(raw.get("srv_port")),
                    fields=raw,
                )
            )
        except (KeyError, ValueError) as exc:
            raise RuntimeAPIError(f"cannot read 'show servers state' line {line!r}: {exc}") from None
    return rows


# --- the client ----------------------------------------------------------------------------------

ServerAdminState = Literal["ready", "drain", "maint"]


def _checked_name(name: str) -> str:
    """A proxy or server name as one CLI word: no spaces, separators or line breaks."""
    if not name or any(c in name for c in " /\t\r\n;#"):
        raise ValueError(f"not a backend or server name: {name!r}")
    return name


def _server_ref(backend: str, server: str) -> str:
    return f"{_checked_name(backend)}/{_checked_name(server)}"


class RuntimeAPI:
    """A client of HAProxy's stats socket (level admin). Blocking; call it from a thread in asyncio code."""

    def __init__(self, socket_path: Path | str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.socket_path = Path(socket_path)
        self.timeout = timeout

    def command(self, command: str, payload: str | None = None) -> str:
        return send_command(self.socket_path, command, self.timeout, payload)

    def set_ssl_cert(self, loaded_as: str, bundle: bytes) -> str:
        """Replace, in memory, the certificate HAProxy loaded from `loaded_as` (the path in its configuration):
        `set ssl cert` then `commit ssl cert`; an aborted transaction leaves the old certificate serving."""
        if any(c.isspace() for c in loaded_as):
            raise RuntimeAPIError(f"{loaded_as!r} has white space: HAProxy's runtime API cannot name it")
        payload = re.sub(r"\n\s*\n", "\n", bundle.decode().strip("\n"))  # an empty line would end the payload early
        reply = self.command(f"set ssl cert {loaded_as}", payload)
        if "Transaction created" not in reply and "Transaction updated" not in reply:
            self.command(f"abort ssl cert {loaded_as}")
            raise RuntimeAPIError(f"HAProxy refused 'set ssl cert {loaded_as}': {reply.strip() or 'no answer'}")
        committed = self.command(f"commit ssl cert {loaded_as}")
        if "Success" not in committed:
            self.command(f"abort ssl cert {loaded_as}")
            raise RuntimeAPIError(f"HAProxy refused 'commit ssl cert {loaded_as}': {committed.strip() or 'no answer'}")
        return (reply + committed).strip()

    def show_stat(self, proxies_only: bool = False) -> list[StatRow]:
        """`show stat`; `proxies_only`: frontends and backends, no server rows (type mask 1|2: a sixth of the
        rows at 10 real servers a service)."""
        return parse_stat(self.command("show stat -1 3 -1" if proxies_only else "show stat"))

    def show_servers_state(self, backend: str | None = None) -> list[ServerStateRow]:
        command = "show servers state" + (f" {_checked_name(backend)}" if backend else "")
        return parse_servers_state(self.command(command))

    def show_info(self) -> dict[str, str]:
        info: dict[str, str] = {}
        for line in self.command("show info").splitlines():
            key, sep, value = line.partition(":")
            if sep:
                info[key.strip()] = value.strip()
        if "Pid" not in info:
            raise RuntimeAPIError(f"not 'show info' output from {self.socket_path}")
        return info

    def _set(self, command: str) -> None:
        check_reply(command, self.command(command))

    def set_server_state(self, backend: str, server: str, state: ServerAdminState) -> None:
        """ready (online), drain (no new sessions) or maint (no traffic at all)."""
        if state not in ("ready", "drain", "maint"):
            raise ValueError(f"server state must be ready, drain or maint, not {state!r}")
        self._set(f"set server {_server_ref(backend, server)} state {state}")

    def set_server_weight(self, backend: str, server: str, weight: int) -> None:
        if not isinstance(weight, int) or not 0 <= weight <= 256:
            raise ValueError(f"weight must be an integer from 0 to 256, not {weight!r}")
        self._set(f"set server {_server_ref(backend, server)} weight {weight}")

    def enable_health(self, backend: str, server: str) -> None:
        self._set(f"enable health {_server_ref(backend, server)}")

    def disable_health(self, backend: str, server: str) -> None:
        self._set(f"disable health {_server_ref(backend, server)}")

    def enable_agent(self, backend: str, server: str) -> None:
        """Start the agent check of a server (a dynamic server starts with it off)."""
        self._set(f"enable agent {_server_ref(backend, server)}")

    # --- dynamic servers and addresses (HAProxy answers these with a sentence, not with nothing) ---

    def _expect(self, command: str, *success: str) -> str:
        reply = self.command(command).strip()
        if not any(s in reply for s in success):
            raise RuntimeAPIError(f"HAProxy refused {command!r}: {reply or '(no answer)'}")
        return reply

    def add_server(self, backend: str, server: str, address: str, options: tuple[str, ...] = ()) -> None:
        """`add server`: a new server, in maintenance with its checks off until `enable health` / `set server state`."""
        words = [address, *options]
        if any(not w or any(c in w for c in " \t\r\n") for w in words):
            raise ValueError(f"add server takes plain words: {words!r}")
        self._expect(f"add server {_server_ref(backend, server)} {' '.join(words)}", "New server registered")

    def del_server(self, backend: str, server: str) -> None:
        """`del server`: HAProxy refuses unless the server is in maintenance with no connection left."""
        self._expect(f"del server {_server_ref(backend, server)}", "Server deleted")

    def set_server_addr(self, backend: str, server: str, address: str, port: int | None = None) -> None:
        if any(c in address for c in " \t\r\n"):
            raise ValueError(f"not an address: {address!r}")
        command = f"set server {_server_ref(backend, server)} addr {address}" + (f" port {int(port)}" if port else "")
        self._expect(command, "changed", "no need to change")
