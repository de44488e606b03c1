"""The runtime API's parsers on output captured from HAProxy 2.6, and the client against a stand-in socket."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from pacslb.engines.haproxy.runtime import (
    AdminFlag,
    OperationalState,
    ProxyKind,
    RuntimeAPI,
    RuntimeAPIError,
    check_reply,
    parse_servers_state,
    parse_stat,
    send_command,
)

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def rows():
    return parse_stat((DATA / "show_stat.csv").read_text())


def by_name(rows, proxy, name):
    return next(r for r in rows if r.proxy == proxy and r.name == name)


def test_every_line_becomes_a_typed_row(rows):
    assert [(r.proxy, r.name, r.kind) for r in rows] == [
        ("web", "FRONTEND", ProxyKind.FRONTEND),
        *[("web", f"rs{i}", ProxyKind.SERVER) for i in range(1, 7)],
        ("web", "BACKEND", ProxyKind.BACKEND),
        ("only", "a", ProxyKind.SERVER),
        ("only", "BACKEND", ProxyKind.BACKEND),
    ]


def test_server_columns(rows):
    rs1 = by_name(rows, "web", "rs1")
    assert rs1.status == "UP"
    assert rs1.weight == 50 and rs1.user_weight == 50
    assert rs1.active is True and rs1.backup is False
    assert (rs1.sessions_current, rs1.sessions_total) == (0, 1)
    assert (rs1.check_status, rs1.check_code, rs1.check_description) == ("L7OK", 200, "Layer7 check passed")
    assert rs1.address == "127.0.0.2:18381"
    assert rs1.mode == "http"
    assert rs1.checked


def test_failed_check_keeps_haproxy_words(rows):
    rs2 = by_name(rows, "web", "rs2")
    assert rs2.status == "UP 1/3"
    assert rs2.check_status == "L4CON"
    assert rs2.check_info == "Connection refused"
    assert rs2.check_description == "Layer4 connection problem"
    assert rs2.check_code is None
    assert rs2.check_failures == 2


def test_admin_states_and_unchecked_servers(rows):
    assert by_name(rows, "web", "rs3").status == "DRAIN 1/3"
    assert by_name(rows, "web", "rs4").status == "MAINT"
    rs5 = by_name(rows, "web", "rs5")
    assert rs5.status == "no check" and not rs5.checked and rs5.check_status is None


def test_frontend_and_backend_rows(rows):
    frontend = by_name(rows, "web", "FRONTEND")
    assert (frontend.status, frontend.sessions_total, frontend.sessions_limit) == ("OPEN", 1, 9977)
    assert frontend.active is None
    backend = by_name(rows, "web", "BACKEND")
    assert backend.status == "UP"
    assert backend.fields["algo"] == "roundrobin"  # every column stays reachable


def test_header_only_and_quoted_values():
    text = '# pxname,svname,status,type,last_chk,scur\nweb,rs1,DOWN,2,"Bad, really",3\n\n'
    (row,) = parse_stat(text)
    assert row.check_info == "Bad, really"
    assert row.sessions_current == 3
    assert parse_stat("# pxname,svname,type\n") == []


@pytest.mark.parametrize("text", ["", "Unknown command.\n", "Permission denied\n"])
def test_not_show_stat_is_an_error(text):
    with pytest.raises(RuntimeAPIError):
        parse_stat(text)


def test_servers_state():
    rows = parse_servers_state((DATA / "show_servers_state.txt").read_text())
    assert [r.server for r in rows] == ["rs1", "rs2", "rs3", "rs4", "rs5", "rs6", "a"]
    rs3, rs4 = rows[2], rows[3]
    assert rs3.draining and not rs3.maintenance and rs3.admin_flags == AdminFlag.FORCED_DRAIN
    assert rs4.maintenance and rs4.operational_state is OperationalState.STOPPED
    assert rows[0].user_weight == 50 and rows[0].initial_weight == 1
    assert rows[0].port == 18381 and rows[0].backend == "web" and rows[-1].backend_id == 4


def test_servers_state_rejects_other_text():
    with pytest.raises(RuntimeAPIError):
        parse_servers_state("No such backend.\n")


def test_check_reply():
    assert check_reply("set server a/b state drain", "\n") == ""
    with pytest.raises(RuntimeAPIError, match="No such server"):
        check_reply("set server a/nope state drain", "No such server.\n\n")


# --- the client, against a stand-in for HAProxy's socket -----------------------------------------


class FakeSocket:
    """Answers each connection from a table, like HAProxy in non-interactive mode: read a line, answer, close."""

    def __init__(self, path: Path, answers: dict[str, str]) -> None:
        self.path = path
        self.answers = answers
        self.received: list[str] = []
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(str(path))
        self.sock.listen()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while not data.endswith(b"\n"):
                    chunk = conn.recv(1024)
                    if not chunk:
                        break
                    data += chunk
                command = data.decode().strip()
                self.received.append(command)
                conn.sendall(self.answers.get(command, "Unknown command.\n").encode())

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def fake(tmp_path):
    server = FakeSocket(
        tmp_path / "admin.sock",
        {
            "show stat": (DATA / "show_stat.csv").read_text(),
            "set server web/rs1 state drain": "\n",
            "set server web/rs1 weight 7": "\n",
            "set server web/nope state maint": "No such server.\n\n",
            "show servers state web": (DATA / "show_servers_state.txt").read_text(),
            "show info": "Name: HAProxy\nVersion: 2.6.12\nPid: 4242\n",
        },
    )
    yield server
    server.close()


def test_client_commands(fake):
    api = RuntimeAPI(fake.path, timeout=2)
    assert len(api.show_stat()) == 10
    api.set_server_state("web", "rs1", "drain")
    api.set_server_weight("web", "rs1", 7)
    assert len(api.show_servers_state("web")) == 7
    assert api.show_info()["Pid"] == "4242"
    with pytest.raises(RuntimeAPIError, match="No such server"):
        api.set_server_state("web", "nope", "maint")
    assert fake.received[:3] == ["show stat", "set server web/rs1 state drain", "set server web/rs1 weight 7"]


@pytest.mark.parametrize(
    "call",
    [
        lambda api: api.set_server_state("web", "rs1", "offline"),
        lambda api: api.set_server_weight("web", "rs1", 257),
        lambda api: api.set_server_weight("web", "rs1", -1),
        lambda api: api.set_server_state("web", "rs1; shutdown", "ready"),
        lambda api: api.set_server_state("web/x", "rs1", "ready"),
        lambda api: api.command("show stat\nshutdown sessions"),
    ],
)
def test_client_refuses_bad_arguments_before_sending(fake, call):
    with pytest.raises(ValueError):
        call(RuntimeAPI(fake.path))
    assert fake.received == []


def test_unreachable_socket_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeAPIError, match="does not exist"):
        send_command(tmp_path / "missing.sock", "show info")
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(tmp_path / "dead.sock"))
    dead.close()
    with pytest.raises(RuntimeAPIError, match="refuses"):
        send_command(tmp_path / "dead.sock", "show info")
