"""external: a real script run with VIP, VIP port, real server and port; up, down, timeout (process group killed)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from pacslb.health import CheckContext, ExternalProbe, Target, probe_for
from pacslb.model.config import ExternalCheck
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
