"""The feedback agent for real: `pacslb agent` beside each real server, HAProxy's weights follow it.

Each real server (a TinyHTTPServer on its own loopback address) has a `pacslb agent --command` on
the same address; the service has `feedback_agent: {port, interval}`. The command prints what a file
holds: a weight, then the drain file, 'down ...', and 'ready'. `pacslb status` and the traffic show
each answer.
"""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from support.appliance import PACSLB
from support.configs import config_text, http_check, real_server, service
from support.net import free_port, http_get, loopback_host
from support.wait import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def agents():
    """Factory: start `pacslb agent ARGS` (bounded by `timeout`); all stopped by PID at teardown."""
    started: list[subprocess.Popen] = []

    def start(*args: str, log: Path) -> subprocess.Popen:
        with open(log, "ab") as out:
            process = subprocess.Popen(
                ["timeout", "300", *PACSLB, "agent", *args], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def test_weights_follow_the_feedback_agent_then_drain_down_and_ready(start_appliance, http_server, agents, tmp_path):
    rs1, rs2 = http_server("rs1"), http_server("rs2")
    agent_port = free_port(rs1.host)
    values = {}
    for rs in (rs1, rs2):
        values[rs.name] = tmp_path / f"{rs.name}.value"
        values[rs.name].write_text("100\n")
        agents(
            "--listen",
            f"{rs.host}:{agent_port}",
            "--command",
            f"cat {values[rs.name]}",
            "--drain-file",
            str(tmp_path / f"{rs.name}.drain"),
            log=tmp_path / f"agent-{rs.name}.log",
        )
    vip, port = loopback_host(220), free_port()
    appliance = start_appliance(
        config_text(
            service(
                "web",
                "layer7-http",
                vip,
                port,
                [real_server(rs1), real_server(rs2)],
                health_check=http_check(300),
                feedback_agent=f"{{port: {agent_port}, interval: 300ms}}",
            )  # fmt: skip
        )
    )
    rs = lambda name: appliance.server(appliance.status(), "web", name)  # noqa: E731

    values["rs1"].write_text("40\n")
    wait_until(lambda: rs("rs1")["weight"] == 40, 30, what="rs1's weight follows its agent to 40")
    assert rs("rs2")["weight"] == 100
    served = Counter(http_get(vip, port)[1].strip() for _ in range(140))
    # weighted round robin: 40 of every 140 new connections to rs1
    assert abs(served["rs1"] - 40) <= 6, served

    (tmp_path / "rs1.drain").touch()
    wait_until(lambda: rs("rs1")["state"] == "DRAIN", 30, what="rs1 DRAIN while its drain file exists")
    assert Counter(http_get(vip, port)[1].strip() for _ in range(20)) == {"rs2": 20}

    (tmp_path / "rs1.drain").unlink()
    values["rs1"].write_text("down maintenance window\n")
    down = wait_until(lambda: (r := rs("rs1"))["state"] == "DOWN" and r, 30, what="rs1 DOWN when its agent says down")
    assert down["transition"] == "set by the agent"
    table = appliance.cli("status")
    assert "DOWN" in table.stdout

    values["rs1"].write_text("ready\n")
    wait_until(lambda: (r := rs("rs1"))["state"] == "UP" and r["weight"] == 100, 30, what="rs1 UP at full weight on 'ready'")
    assert "rs1" in {http_get(vip, port)[1].strip() for _ in range(10)}
    assert "answering 'up 40%'" in (tmp_path / "agent-rs1.log").read_text()


def test_agent_command_line_errors_exit_2(tmp_path):
    done = subprocess.run(
        [*PACSLB, "agent", "--listen", "nowhere"], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 2
    assert "--listen 'nowhere'" in done.stderr
