"""external: a real script run with VIP, VIP port, real server and port; up, down, timeout (process group killed);
only a script of root, in directories only root can change, runs."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest

from pacslb.health import CheckContext, ExternalProbe, Target, probe_for
from pacslb.model import load_text
from pacslb.model.checks import check_files
from pacslb.model.config import ExternalCheck
from support.accounts import system_user
from support.processes import pid_gone


def _script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "check.sh"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


async def test_exit_0_is_up_and_the_script_gets_the_reference_arguments(tmp_path):
    out = tmp_path / "args"
    script = _script(tmp_path, f'echo "$1 $2 $3 $4 $PACSLB_VIP $PACSLB_REAL_SERVER_PORT" > {out}\nexit 0\n')
    probe = probe_for(ExternalCheck(type="external", script=script, timeout="4s"), CheckContext("192.0.2.10", 104))
    result = await probe.probe(Target("127.0.0.1", 11112))
    assert result.up and result.reason == "script exited 0"
    assert out.read_text() == "192.0.2.10 104 127.0.0.1 11112 192.0.2.10 11112\n"


async def test_a_nonzero_exit_is_down_with_the_first_line_of_stderr(tmp_path):
    script = _script(tmp_path, 'echo "" >&2\necho "PACS says: worklist offline" >&2\necho more >&2\nexit 3\n')
    result = await ExternalProbe(timeout=4, script=script).probe(Target("127.0.0.1", 1))
    assert not result.up and result.reason == "script exited 3: PACS says: worklist offline"
    result = await ExternalProbe(timeout=4, script=_script(tmp_path, "exit 1\n")).probe(Target("127.0.0.1", 1))
    assert not result.up and result.reason == "script exited 1"


async def test_a_script_past_its_timeout_is_killed_with_its_children(tmp_path):
    pids = tmp_path / "pids"
    # The script and a child of its own both write their PIDs, then sleep far past the timeout.
    script = _script(tmp_path, f"sleep 300 &\necho $$ $! > {pids}\nwait\n")
    result = await ExternalProbe(timeout=0.5, script=script).probe(Target("127.0.0.1", 1))
    assert not result.up and result.reason == "script timed out after 0.5s (killed)"
    recorded = [int(p) for p in re.findall(r"\d+", pids.read_text())]
    assert len(recorded) == 2 and all(pid_gone(pid) for pid in recorded), recorded


async def test_a_missing_script_is_down_and_says_so(tmp_path):
    result = await ExternalProbe(timeout=1, script=str(tmp_path / "nope.sh")).probe(Target("127.0.0.1", 1))
    assert not result.up and result.reason.startswith(f"script {tmp_path / 'nope.sh'} could not run")


async def test_a_cancelled_check_leaves_no_script_running(tmp_path):
    """The service cancels checks when a configuration change removes them: the script goes too."""
    pids = tmp_path / "pids"
    script = _script(tmp_path, f"sleep 300 &\necho $$ $! > {pids}\nwait\n")
    task = asyncio.ensure_future(ExternalProbe(timeout=60, script=script).probe(Target("127.0.0.1", 1)))
    deadline = asyncio.get_running_loop().time() + 30
    while not (pids.exists() and len(re.findall(r"\d+", pids.read_text())) == 2):
        assert asyncio.get_running_loop().time() < deadline, "the script never started"
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    recorded = [int(p) for p in re.findall(r"\d+", pids.read_text())]
    deadline = asyncio.get_running_loop().time() + 30
    while not all(pid_gone(pid) for pid in recorded):
        assert asyncio.get_running_loop().time() < deadline, f"still running: {recorded}"
        await asyncio.sleep(0.05)


# --- only root's scripts run (docs/security.md "External check scripts") ------------------------------


def _marked_script(directory: Path, marker: Path) -> Path:
    """A script that leaves `marker` behind when it runs."""
    directory.mkdir(mode=0o755, exist_ok=True)
    script = directory / "check.sh"
    script.write_text(f"#!/bin/sh\ntouch {marker}\nexit 0\n")
    script.chmod(0o755)
    return script


async def test_a_script_in_a_directory_of_another_user_never_runs(tmp_path, caplog):
    marker = tmp_path / "ran"
    with system_user("ext") as (name, uid):
        theirs = tmp_path / "theirs"
        script = _marked_script(theirs, marker)
        os.chown(theirs, uid, -1)  # its owner could put anything there, and root would run it
        loaded = load_text(f"""
version: 1
virtual_services:
  - name: pacs
    mode: layer7-tcp
    listen: [{{address: 192.0.2.1, port: 104}}]
    health_check: {{type: external, script: {script}}}
    real_servers: [{{name: rs1, address: 127.0.0.1, port: 11112}}]
""")
        (problem,) = check_files(loaded.config, tmp_path)
        assert problem.path == "virtual_services[pacs].health_check.script"
        assert problem.message.startswith(f"{theirs} is owned by uid {uid} ({name}), not root")
        # at run time too (a directory given away after the configuration was applied): down, saying why, logged once
        probe = ExternalProbe(timeout=4, script=str(script))
        for _ in range(3):
            result = await probe.probe(Target("127.0.0.1", 1))
            assert not result.up
            assert result.reason == f"script {script} could not run: {theirs} is owned by uid {uid} ({name}), not root"
        assert not marker.exists(), "the script ran"
        logged = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert len(logged) == 1 and f"external check script {script} refused: {theirs} is owned by uid {uid}" in logged[0]
        # given back to root (0755): it runs
        os.chown(theirs, 0, -1)
        result = await probe.probe(Target("127.0.0.1", 1))
        assert result.up and marker.exists()


async def test_a_script_in_a_root_owned_0755_directory_runs(tmp_path):
    marker = tmp_path / "ran"
    checks = tmp_path / "checks"
    script = _marked_script(checks, marker)
    os.chown(checks, 0, 0)
    checks.chmod(0o755)
    result = await ExternalProbe(timeout=4, script=str(script)).probe(Target("127.0.0.1", 1))
    assert result.up and marker.exists()
    checks.chmod(0o777)  # anyone could now swap it: refused before it runs
    marker.unlink()
    result = await ExternalProbe(timeout=4, script=str(script)).probe(Target("127.0.0.1", 1))
    assert not result.up and "is writable by its group or by others (mode 0777)" in result.reason and not marker.exists()
