"""The master-worker process code against the real HAProxy, on a hand-written configuration:
start, adopt, a confirmed reload, a refused reload that leaves the old worker serving, stop."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from pacslb import files
from pacslb.engines.haproxy import process
from pacslb.engines.haproxy.runtime import RuntimeAPI
from pacslb.paths import StatePaths

pytestmark = [pytest.mark.engine, pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(paths: StatePaths, port: int, status: int) -> str:
    return f"""global
    stats socket {paths.haproxy_admin_socket} mode 600 level admin
    server-state-file {paths.haproxy_server_state}
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
    load-server-state-from-file global
frontend web
    bind 127.0.0.1:{port}
    http-request return status {status}
backend web
    server rs1 127.0.0.1:9 weight 10
"""


def get_status(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        return int(s.recv(100).split()[1])


@pytest.fixture
def paths():
    root = Path(tempfile.mkdtemp(prefix="pacslb-proc-", dir="/tmp"))  # short: HAProxy's socket paths are limited
    paths = StatePaths(root)
    paths.haproxy_dir.mkdir()
    yield paths
    for pid in process.masters_of(paths):
        process.stop(pid)
    shutil.rmtree(root, ignore_errors=True)


def test_start_adopt_reload_refused_reload_stop(paths):
    port = free_port()
    files.atomic_write(paths.haproxy_config, config(paths, port, 201))
    assert process.check(paths.haproxy_config).ok
    master = process.start(paths)
    assert process.read_pidfile(paths.haproxy_pid) == master.pid
    assert process.find_masters(paths) == [master.pid]
    assert get_status(port) == 201

    adopted = process.adopt(paths)
    assert adopted is not None and adopted.pid == master.pid and adopted.adopted

    # a runtime weight survives the reload through the server-state file
    RuntimeAPI(paths.haproxy_admin_socket).set_server_weight("web", "rs1", 3)
    first_worker = master.show_proc().current_workers[0].pid
    files.atomic_write(paths.haproxy_config, config(paths, port, 202))
    table = process.reload(paths)
    assert table.master.pid == master.pid and table.master.failed == 0
    assert first_worker not in [w.pid for w in table.current_workers]
    assert get_status(port) == 202
    (rs1,) = RuntimeAPI(paths.haproxy_admin_socket).show_servers_state("web")
    assert rs1.user_weight == 3

    files.atomic_write(paths.haproxy_config, config(paths, port, 202) + "    bogus directive\n")
    with pytest.raises(process.ReloadError, match="unknown keyword 'bogus'"):
        process.reload(paths)
    assert get_status(port) == 202  # the old worker serves on
    assert process.find_masters(paths) == [master.pid]

    workers = master.workers()
    process.stop(master)
    assert not process.is_running(master.pid)
    assert not any(process.is_running(w) for w in workers)
    assert process.adopt(paths) is None and process.masters_of(paths) == []


def test_start_failure_names_haproxy_words(paths):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        files.atomic_write(paths.haproxy_config, config(paths, busy.getsockname()[1], 200))
        with pytest.raises(process.StartError, match="cannot bind socket") as failed:
            process.start(paths)
        assert "hint: another process listens" in str(failed.value)
    finally:
        busy.close()
    assert process.masters_of(paths) == []


def test_stop_by_recorded_pid_of_an_orphan(paths):
    port = free_port()
    files.atomic_write(paths.haproxy_config, config(paths, port, 200))
    master = process.start(paths)
    pid = process.read_pidfile(paths.haproxy_pid)
    process.stop(pid)  # by PID only, as `pacslb stop` does without a controller
    master.popen.wait(timeout=5)  # our child here: reap it
    assert process.masters_of(paths) == []


def test_a_saved_server_state_loads_without_warnings_for_servers_without_an_agent(paths):
    """A `port` on a default-server sets the agent port too; `show servers state` dumps it for servers with no
    agent check, and a worker loading it warned "server-state partially applied ... agent checks are not enabled"
    for each of them at every reload. The file the appliance writes (server_state.rewrite) drops that port."""
    from pacslb.engines.haproxy.server_state import rewrite

    port = free_port()
    text = config(paths, port, 200).replace("    server rs1 127.0.0.1:9 weight 10\n", "    default-server inter 5s port 443\n"
                                           "    server rs1 127.0.0.1:9 check weight 10\n")  # fmt: skip
    files.atomic_write(paths.haproxy_config, text)
    files.atomic_write(paths.haproxy_server_state, "1\n")
    master = process.start(paths)
    try:
        dumped = RuntimeAPI(paths.haproxy_admin_socket).command("show servers state")
    finally:
        process.stop(master)

    def warnings_on_load(state: str) -> list[str]:
        files.atomic_write(paths.haproxy_server_state, state)
        checked = subprocess.run(["haproxy", "-c", "-f", str(paths.haproxy_config)], capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stderr
        return [line for line in (checked.stdout + checked.stderr).splitlines() if "partially applied" in line]

    assert any("agent checks are not enabled" in w for w in warnings_on_load(dumped))  # what HAProxy does with its own dump
    assert warnings_on_load(rewrite(dumped, {})) == []
