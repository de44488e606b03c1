"""The `external` check: an administrator's script, run as `SCRIPT VIP VIP_PORT REAL_SERVER REAL_SERVER_PORT`.

That argument order is the reference appliance's convention, so existing scripts work unchanged.
Exit status 0 means up; anything else, or running past the timeout, means down. The script runs in a
process group of its own, and the whole group is killed at the timeout (its children too).
The same values come as environment variables, for scripts that prefer names.

Scripts run as root, so before each run the script is examined again (model/files.py `untrusted_script`):
root's own, in directories only root can change, no symbolic link on the way. Validation refused any other
at apply time; asking again before each run catches a file or directory changed since. A script refused then
is a check down, with the reason, and a warning in the log (once for each new reason).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from dataclasses import dataclass

from ..model.files import RECOMMENDED_SCRIPT_DIR, untrusted_script
from .base import Result, Target

log = logging.getLogger("pacslb.health")

STDERR_KEPT = 4096  # enough for the first line of a complaint

_refusals_logged: dict[str, str] = {}  # script -> the reason last logged, so that a refusal is logged once, not per check


def refusal(script: str) -> Result | None:
    """The check's result when `script` must not run as root (logged once for each new reason), or None."""
    why = untrusted_script(script)
    if why is None:
        _refusals_logged.pop(script, None)
        return None
    if _refusals_logged.get(script) != why:
        _refusals_logged[script] = why
        log.warning("external check script %s refused: %s; scripts run as root, so only a script root owns, in "
                    "directories only root can change and named without symbolic links, runs (e.g. in %s; see "
                    "docs/security.md)", script, why, RECOMMENDED_SCRIPT_DIR)  # fmt: skip
    return Result(False, f"script {script} could not run: {why}")


def arguments(script: str, vip: str | None, vip_port: int | None, target: Target) -> list[str]:
    """The command line: a backend-only service has no VIP, so its VIP and VIP port are empty strings."""
    return [script, vip or "", "" if vip_port is None else str(vip_port), target.address, str(target.port)]


def environment(vip: str | None, vip_port: int | None, target: Target, timeout: float) -> dict[str, str]:
    """The script's environment: a small fixed PATH and the check's values, nothing of the appliance's own."""
    return {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
        "PACSLB_VIP": vip or "",
        "PACSLB_VIP_PORT": "" if vip_port is None else str(vip_port),
        "PACSLB_REAL_SERVER": target.address,
        "PACSLB_REAL_SERVER_PORT": str(target.port),
        "PACSLB_CHECK_TIMEOUT": f"{timeout:g}",
    }


def judge_exit(status: int, stderr: bytes) -> Result:
    """Pure: the verdict on how the script ended (a negative status is the signal that ended it)."""
    line = next((ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()), "")
    if status == 0:
        return Result(True, "script exited 0")
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        what = f"script killed by {name}"
    else:
        what = f"script exited {status}"
    return Result(False, f"{what}: {line[:200]}" if line else what)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


@dataclass
class ExternalProbe:
    """Run `script` for each check of a real server; the VIP and VIP port come from the virtual service."""

    timeout: float
    script: str
    vip: str | None = None
    vip_port: int | None = None

    async def probe(self, target: Target) -> Result:
        if (refused := refusal(self.script)) is not None:
            return refused
        try:
            process = await asyncio.create_subprocess_exec(
                *arguments(self.script, self.vip, self.vip_port, target),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env=environment(self.vip, self.vip_port, target, self.timeout),
                cwd="/",
                start_new_session=True,  # its own process group, so that the timeout kills its children too
            )
        except OSError as exc:
            # Our side: the file is missing or not executable. Down, and saying so.
            return Result(False, f"script {self.script} could not run: {exc.strerror or exc}")
        reading = asyncio.ensure_future(_read_stderr(process.stderr))
        try:
            async with asyncio.timeout(self.timeout):
                status = await process.wait()
        except TimeoutError:
            _kill_group(process.pid)
            await process.wait()
            reading.cancel()
            return Result(False, f"script timed out after {self.timeout:g}s (killed)")
        except BaseException:
            _kill_group(process.pid)  # cancelled (the check was removed): leave nothing running
            reading.cancel()
            raise
        # The script is gone; children it left behind in its group (holding stderr open) go too.
        _kill_group(process.pid)
        try:
            stderr = await asyncio.wait_for(reading, 1.0)
        except TimeoutError:
            stderr = b""
        return judge_exit(status, stderr)


async def _read_stderr(stream: asyncio.StreamReader) -> bytes:
    """The first STDERR_KEPT bytes; the rest is read and dropped so that a chatty script never blocks."""
    kept = await stream.read(STDERR_KEPT)
    while await stream.read(65536):
        pass
    return kept
