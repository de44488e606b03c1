"""The feedback agent (`pacslb agent`): runs on a real server and tells HAProxy how much load it can take.

HAProxy's agent check connects every `agent-inter`, reads one line and closes. The agent answers

    up 73%                      the weight, as a share of the server's configured weight (from CPU idle,
                                or from the number a command prints); `up` also ends an earlier `down`
    up 0% #drain ...            drain: no new clients, persistent ones still reach it
    down #reason                out of service until the agent says `up` again

It never answers HAProxy's admin words `ready`, `drain` and `maint`: HAProxy keeps those as sticky admin
states, the same ones an operator's `pacslb server drain|halt` sets, so an agent saying `ready` would
undo an operator's halt. Weight 0% is drain by HAProxy's own definition (no new connections, shown as
DRAIN), and `down` covers maint.

What to say is decided by pure functions (`parse_output`, `cpu_weight`, `answer`); `Agent` owns the
sampling of the CPU, the command and the files.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("pacslb.agent")

DEFAULT_PORT = 3333
WORDS = ("drain", "down", "maint", "ready", "up")
_NUMBER = re.compile(r"^(\d+(?:\.\d+)?)\s*%?$")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f#]")


class AgentInputError(ValueError):
    """A command's output that is neither a number 0-100 nor one of WORDS."""


@dataclass(frozen=True)
class Reading:
    """What the agent found: a weight in percent, or a state word; with an optional reason."""

    weight: int | None = None  # 0-100
    word: str | None = None  # one of WORDS
    reason: str | None = None


def parse_output(text: str) -> Reading:
    """A command's output: its first non-empty line, a number 0-100 (optionally with %) or a word.

    Words: drain, down, maint, ready, up (any case); what follows the first word is the reason
    ('down disk full'). Raises AgentInputError otherwise.
    """
    line = next((lis.strip() for lis in text.splitlines() if lis.strip()), "")
    if not line:
        raise AgentInputError("the command printed nothing: print a number from 0 to 100, or drain, down, maint, ready or up")
    number = _NUMBER.match(line)
    if number:
        value = float(number.group(1))
        if value > 100:
            raise AgentInputError(f"{line!r} is above 100: print a weight from 0 to 100 (percent)")
        return Reading(weight=round(value))
    word, _, rest = line.partition(" ")
    if word.lower() in WORDS:
        return Reading(word=word.lower(), reason=rest.strip() or None)
    raise AgentInputError(f"{line[:60]!r} is neither a number from 0 to 100 nor one of {', '.join(WORDS)}")


def cpu_weight(idle_percent: float, min_weight: int = 1, max_weight: int = 100) -> int:
    """The weight of a server whose CPUs are `idle_percent` idle, kept within [min_weight, max_weight]."""
    return max(min_weight, min(max_weight, round(idle_percent)))


def _reason(text: str | None) -> str:
    return _UNSAFE.sub(" ", text or "").strip()[:200]


def answer(reading: Reading, min_weight: int = 1, max_weight: int = 100) -> str:
    """The line HAProxy gets for `reading` (without its newline). Pure.

    A weight is kept within [min_weight, max_weight]; `ready` and `up` mean max_weight; the words
    drain, down and maint are said as they are meant, whatever the bounds."""
    reason = _reason(reading.reason)
    if reading.word in ("down", "maint"):
        return "down #" + (reason or ("maintenance" if reading.word == "maint" else "down"))
    if reading.word == "drain":
        return "up 0% #drain" + (f": {reason}" if reason else "")
    if reading.word in ("ready", "up"):
        weight = max_weight
    else:
        assert reading.weight is not None
        weight = reading.weight
    weight = max(min_weight, min(max_weight, weight))
    return f"up {weight}%" + (f" #{reason}" if reason else "")


def files_reading(drain_file: Path | None, down_file: Path | None) -> Reading | None:
    """Drain or down while its file exists (down wins); None when neither exists."""
    if down_file is not None and down_file.exists():
        return Reading(word="down", reason=f"{down_file} exists")
    if drain_file is not None and drain_file.exists():
        return Reading(word="drain", reason=f"{drain_file} exists")
    return None


def parse_listen(text: str) -> tuple[str, int]:
    """'ADDR:PORT', '[v6]:PORT', ':PORT' or 'PORT' -> (address, port); all addresses when omitted."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]") or "0.0.0.0"
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"--listen {text!r}: write ADDRESS:PORT, e.g. 0.0.0.0:{DEFAULT_PORT}")
    return host, int(port)


class Agent:
    """The I/O around `answer`: CPU sampling, the command, the files."""

    def __init__(
        self,
        command: str | None = None,
        drain_file: Path | None = None,
        down_file: Path | None = None,
        min_weight: int = 1,
        max_weight: int = 100,
        command_timeout: float = 2.0,
    ) -> None:
        self.command = command
        self.drain_file = drain_file
        self.down_file = down_file
        self.min_weight = min_weight
        self.max_weight = max_weight
        self.command_timeout = command_timeout
        self.idle = 100.0
        self.last_answer: str | None = None
        self._sampler: asyncio.Task | None = None

    async def start(self) -> None:
        if self.command is None:
            import psutil

            psutil.cpu_percent(interval=None)  # the first call starts the measurement
            self._sampler = asyncio.get_running_loop().create_task(self._sample(psutil))

    async def _sample(self, psutil) -> None:  # type: ignore[no-untyped-def]
        while True:
            await asyncio.sleep(1.0)
            self.idle = 100.0 - psutil.cpu_percent(interval=None)

    async def reading(self) -> Reading | None:
        """What to report now; None when the command failed (then nothing is said)."""
        found = files_reading(self.drain_file, self.down_file)
        if found is not None:
            return found
        if self.command is None:
            return Reading(weight=cpu_weight(self.idle, self.min_weight, self.max_weight), reason=f"cpu idle {self.idle:.0f}%")
        process = await asyncio.create_subprocess_shell(
            self.command,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            stdin=asyncio.subprocess.DEVNULL,
            env={**os.environ, "LC_ALL": "C"},
        )
        try:
            out, _ = await asyncio.wait_for(process.communicate(), self.command_timeout)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()
            log.error("--command did not finish within %gs: no answer given", self.command_timeout)
            return None
        if process.returncode != 0:
            log.error("--command exited with %d: no answer given", process.returncode)
            return None
        try:
            return parse_output(out.decode(errors="replace"))
        except AgentInputError as exc:
            log.error("--command: %s; no answer given", exc)
            return None

    async def respond(self) -> str:
        """The line for HAProxy now ('' for no answer: HAProxy keeps the server as it is)."""
        reading = await self.reading()
        line = "" if reading is None else answer(reading, self.min_weight, self.max_weight)
        if line != self.last_answer:
            log.info("answering %r", line or "(nothing)")
            self.last_answer = line
        return line

    async def close(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
