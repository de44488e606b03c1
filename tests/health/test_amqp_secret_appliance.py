"""The AMQP check's password end to end: a running appliance (`pacslb up`, HAProxy) logs in to a real
RabbitMQ with the secret, while the viewer's API, `pacslb diff`, revisions.sqlite and the logs never hold it;
a rotation is a change without values, and a rollback runs the old secret again (the broker refuses it)."""

from __future__ import annotations

import subprocess
import uuid

import httpx
import pytest
from health_peers import RABBITMQ_BIN

from support.appliance import Appliance
from support.net import LOOPBACK, free_port, loopback_host
from support.wait import wait_until

pytestmark = [pytest.mark.engine, pytest.mark.slow]

FIRST = f"First-Check-Pa55-{uuid.uuid4().hex[:8]}"
SECOND = f"Second-Check-Pa55-{uuid.uuid4().hex[:8]}"
VIEWER_LOGIN = "viewer-login-words"


def rabbitmqctl(node, *args: str) -> None:
    done = subprocess.run([str(RABBITMQ_BIN / "rabbitmqctl"), *args], env=node.env, cwd=node.directory,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr


def config_text(user: str, password: str, mq_port: int, vip: str, port: int, agent_port: int) -> str:
    return f"""version: 1
settings:
  health: {{agent_port: {agent_port}}}
  management: {{address: 127.0.0.1, port: 0}}
virtual_services:
  - name: RMQ
    mode: layer7-tcp
    listen: [{{address: {vip}, port: {port}}}]
    health_check: {{type: amqp, username: {user}, password: "{password}", interval: 1s, timeout: 900ms, rise: 1, fall: 1}}
    real_servers: [{{name: mq1, address: {LOOPBACK}, port: {mq_port}}}]
"""


def check_of(appliance: Appliance) -> dict:
    return appliance.server(appliance.status(), "RMQ", "mq1")["check"] or {}


def all_bytes(appliance: Appliance, pattern: str) -> bytes:
    return b"".join(f.read_bytes() for f in appliance.state_dir.glob(pattern) if f.is_file())


def test_the_appliance_logs_in_with_the_secret_and_shows_it_to_no_one(rabbitmq, tmp_path):
    user = f"pacslb-{uuid.uuid4().hex[:8]}"
    rabbitmqctl(rabbitmq, "add_user", user, FIRST)
    rabbitmqctl(rabbitmq, "set_permissions", "-p", "/", user, "", "", "")  # it may log in, nothing else
    text = config_text(user, FIRST, rabbitmq.port, loopback_host(231), free_port(), free_port())
    appliance = Appliance.create(text, tmp_path / "work", "pacslb-secret-")
    try:
        appliance.up(wait=True)
        logged_in = wait_until(lambda: "AMQP login" in str(check_of(appliance)) and check_of(appliance), 30,
                               what="the appliance's amqp check to log in with the secret")  # fmt: skip
        assert logged_in["outcome"] == "passed", logged_in

        # the viewer's API shows the placeholder
        login_file = appliance.state_dir.parent / "eve-password"  # never on a command line (docs/security.md)
        login_file.write_text(VIEWER_LOGIN + "\n")
        login_file.chmod(0o600)
        added = appliance.cli("user", "add", "eve", "--role", "viewer", "--password-file", str(login_file))
        assert added.returncode == 0, added.stderr
        url = (appliance.state_dir / "management-url").read_text().strip().rstrip("/")
        with httpx.Client(base_url=url, verify=False, timeout=10) as viewer:
            assert viewer.post("/api/v1/login", json={"username": "eve", "password": VIEWER_LOGIN}).status_code == 200
            shown = viewer.get("/api/v1/config")
            assert shown.status_code == 200 and FIRST not in shown.text
            assert shown.json()["config"]["virtual_services"][0]["health_check"]["password"] == "********"

        # a rotation: the broker's password, then the configuration's; a change without values
        rabbitmqctl(rabbitmq, "change_password", user, SECOND)
        appliance.config.write_text(text.replace(FIRST, SECOND))
        applied = appliance.cli("apply", "-c", str(appliance.config))
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert SECOND not in applied.stdout and "changed (a secret: its value is not shown)" in applied.stdout
        wait_until(lambda: "AMQP login" in str(check_of(appliance)), 30, what="the check to log in with the new secret")
        diff = appliance.cli("diff")
        assert diff.returncode == 0 and "health_check.password: changed (a secret" in diff.stdout, diff.stdout
        assert FIRST not in diff.stdout and SECOND not in diff.stdout

        # a rollback runs the first secret again: the broker, which has the second one now, refuses it
        back = appliance.cli("rollback", "1")
        assert back.returncode == 0, back.stdout + back.stderr
        refused = wait_until(lambda: "ACCESS_REFUSED" in str(check_of(appliance)) and check_of(appliance), 30,
                             what="the check to try the rolled-back secret")  # fmt: skip
        assert refused["outcome"] == "failed"

        for secret in (FIRST, SECOND):
            assert secret.encode() not in all_bytes(appliance, "revisions.sqlite*")
            assert secret.encode() not in all_bytes(appliance, "**/*.log") + appliance.log.read_bytes()
            assert secret.encode() not in appliance.paths.config.read_bytes()  # the state's copy of what runs
        assert (appliance.state_dir / "secrets.sqlite").stat().st_mode & 0o777 == 0o600
    finally:
        appliance.shut_down()
        rabbitmqctl(rabbitmq, "delete_user", user)
