"""The agent-check port (settings.health.agent_port) cannot be taken by a local non-root user.

HAProxy asks 127.0.0.1:<agent_port> whether each appliance-checked real server is up: whoever listens
there decides. The appliance holds the port from before its engines start to after they stop, whatever
its services check; the default port is privileged; `pacslb up` fails when the port is taken; a change
that moves it is refused when the new port is taken (docs/security.md, "The agent-check port").
A non-root user is made (and removed) by each test that needs one.
"""

from __future__ import annotations

import errno
import random
import socket
import subprocess

import pytest

from pacslb.health.service import unprivileged_port_start
from pacslb.model import load_text
from pacslb.store import RevisionStore
from support.appliance import Appliance
from support.configs import tcp_service_config
from support.net import accepts, free_port, http_get, loopback_host
from support.unprivileged import PYTHON, as_user, local_user

# a squatter: listens on 127.0.0.1:PORT and tells HAProxy every server is down
SQUATTER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(16)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(b"down #squatter\\n")
    c.close()
"""

# what a local user gets when it tries to listen on PORT (on 127.0.0.1 and on every address)
TRY_BIND = """
import errno, socket, sys
for host in ("127.0.0.1", "0.0.0.0"):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, int(sys.argv[1])))
        s.listen(1)
        print(host, "bound")
    except OSError as exc:
        print(host, errno.errorcode.get(exc.errno, exc.errno))
    finally:
        s.close()
"""


def free_privileged_port() -> int:
    """A port below 1024 that nobody listens on (on 127.0.0.1 and on every address)."""
    candidates = list(range(600, 1000))
    random.shuffle(candidates)
    for port in candidates:
        try:
            with socket.socket() as s:
                s.bind(("0.0.0.0", port))
            return port
        except OSError:
            continue
    raise AssertionError("no free port below 1024")


def config(vip: str, port: int, server, agent_port: int) -> str:
    """One layer7-tcp service with a plain connect check: no appliance-run check uses the agent port."""
    return tcp_service_config(port, [server], vip=vip,
                              settings=f"{{max_connections: 2000, health: {{agent_port: {agent_port}}}}}")  # fmt: skip


def test_the_default_agent_port_is_privileged() -> None:
    assert load_text("version: 1\n").config.settings.health.agent_port < unprivileged_port_start() <= 1024


def test_a_squatter_on_the_agent_port_makes_up_fail_naming_the_setting(http_server, tmp_path) -> None:
    """Before: the port was listened on only once some service used an appliance-run check, so `up` ran,
    and a later change adding such a check answered "applied" while HAProxy asked the squatter."""
    server = http_server("rs1")
    agent_port = free_port()  # unprivileged: the only kind a non-root squatter can take
    vip = loopback_host(61)
    appliance = Appliance.create(config(vip, free_port(vip), server, agent_port), tmp_path, prefix="pacslb-agent-")
    with local_user() as user:
        squatter = subprocess.Popen([PYTHON, "-c", SQUATTER, str(agent_port)], stdout=subprocess.PIPE, text=True,
                                    **as_user(user))  # fmt: skip
        try:
            assert squatter.stdout.readline().strip() == "listening"
            done = appliance.cli("up", "-c", str(appliance.config), timeout=60)
            assert done.returncode == 2, done.stderr
            assert f"settings.health.agent_port: cannot listen on 127.0.0.1:{agent_port} (Address already in use)" in done.stderr
            assert "choose a free port below 1024" in done.stderr
            assert appliance.haproxy_pid() is None and not accepts(appliance_port(appliance), vip)  # no engine started
        finally:
            squatter.kill()
            squatter.wait(timeout=10)
            appliance.shut_down()


def appliance_port(appliance: Appliance) -> int:
    loaded = load_text(appliance.config.read_text())
    return loaded.config.virtual_services[0].listen[0].port.first


def test_the_agent_port_is_held_from_start_and_no_local_user_can_take_it(start_appliance, http_server) -> None:
    """Held although no service uses an appliance-run check; a local user gets EACCES (privileged port)."""
    server = http_server("rs1")
    vip = loopback_host(62)
    port, agent_port = free_port(vip), free_privileged_port()
    start_appliance(config(vip, port, server, agent_port))
    assert http_get(vip, port) == (200, "rs1\n")
    assert accepts(agent_port)  # the appliance listens
    with socket.socket() as s:
        with pytest.raises(OSError) as taken:
            s.bind(("127.0.0.1", agent_port))
        assert taken.value.errno == errno.EADDRINUSE
    with local_user() as user:
        tried = subprocess.run([PYTHON, "-c", TRY_BIND, str(agent_port)], capture_output=True, text=True, timeout=30,
                               **as_user(user))  # fmt: skip
    assert tried.returncode == 0, tried.stderr
    assert tried.stdout.split("\n")[:2] == ["127.0.0.1 EACCES", "0.0.0.0 EACCES"]


def test_moving_the_agent_port_to_a_taken_port_is_refused_and_the_old_one_keeps_serving(start_appliance, http_server,
                                                                                         tmp_path) -> None:  # fmt: skip
    server = http_server("rs1")
    vip = loopback_host(63)
    port, agent_port = free_port(vip), free_privileged_port()
    appliance = start_appliance(config(vip, port, server, agent_port))
    store = RevisionStore(appliance.paths.revisions_db, create=False)
    revision, cfg = store.current_id(), appliance.paths.haproxy_config.read_text()
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    taken = blocker.getsockname()[1]
    try:
        moved = tmp_path / "moved.yaml"
        moved.write_text(config(vip, port, server, taken))
        done = appliance.cli("apply", "-c", str(moved))
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"settings.health.agent_port: cannot listen on 127.0.0.1:{taken} (Address already in use)" in done.stderr
        assert "nothing was changed" in done.stderr
        assert store.current_id() == revision and len(store.list()) == 1  # no revision, not even a failed one
        assert appliance.paths.haproxy_config.read_text() == cfg
        assert accepts(agent_port) and http_get(vip, port) == (200, "rs1\n")  # the old port is held and serves
    finally:
        blocker.close()
    again = free_privileged_port()  # a free port: bound first, then HAProxy reloads, then the old one closes
    moved.write_text(config(vip, port, server, again))
    done = appliance.cli("apply", "-c", str(moved))
    assert done.returncode == 0, done.stdout + done.stderr
    assert accepts(again) and not accepts(agent_port)
    assert store.current_id() != revision
