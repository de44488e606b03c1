"""A check worker: a process that runs `runner.Checker` on the shard of watches the controller gives it.

    python -m pacslb.health.worker INDEX      started by health/workers.py, never by hand

stdin brings the shard (one 'watch' line per change, health/worker_protocol.py); stdout carries the watches'
states back; stderr carries log lines ('<level number> <message>'), which the controller writes into its own
log. The worker's life is bound to the controller's: it ends at the end of stdin, which comes when the
controller closes its end, or when the controller dies by any means (even SIGKILL). It ignores SIGINT: a
Ctrl-C at `pacslb up` goes to the whole process group, and only the controller decides when workers stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

from .runner import Checker, Watch
from .worker_protocol import MAX_WATCH_LINE, ProtocolError, decode_watches, encode_state, state_of

log = logging.getLogger("pacslb.health")

STOP_GRACE = 2.0  # checks in flight are cancelled; this bounds how long their cancellation may take
LOG_FORMAT = "%(levelno)d %(message)s"


class Reporter:
    """Tells the controller what it shows of each watch (decided, up, reason) when that changes, and every
    change of state: not each check, so that 3,000 checks/s are not 3,000 messages/s."""

    def __init__(self, write) -> None:
        self.write = write
        self.gen = 0  # of the last watch message applied: the controller ignores states older than a watch's own
        self._sent: dict[tuple[str, str], tuple[Watch, tuple]] = {}

    def checked(self, watch: Watch, changed: bool) -> None:
        last = watch.last
        shown = (watch.decided, watch.up, last.up if last else None, last.reason if last else None)
        sent = self._sent.get(watch.key)
        if not changed and sent is not None and sent[0] is watch and sent[1] == shown:
            return
        self._sent[watch.key] = (watch, shown)
        self.write(encode_state(state_of(self.gen, watch, changed)))

    def keep(self, watches: dict[tuple[str, str], Watch]) -> None:
        """After a new shard: forget what was sent of watches that went or were replaced (a new watch reports anew)."""
        self._sent = {k: v for k, v in self._sent.items() if watches.get(k) is v[0]}


async def _nothing(_watch: Watch) -> None:
    """The Checker's on_change: the state goes to the controller with every report (Reporter.checked)."""


async def run(index: int) -> int:
    """Check what the controller says until its end of the pipe closes; the exit status."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_WATCH_LINE)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    transport, _ = await loop.connect_write_pipe(asyncio.Protocol, sys.stdout.buffer)
    reporter = Reporter(transport.write)
    checker = Checker(_nothing, reporter.checked)
    try:
        while True:
            try:
                line = await reader.readline()
            except ValueError:  # longer than MAX_WATCH_LINE: the controller never sends that
                log.error("check worker %d: a message longer than %d bytes", index, MAX_WATCH_LINE)
                return 2
            if not line:
                return 0  # the controller closed its end or is gone
            try:
                reporter.gen, watches = decode_watches(line)
            except ProtocolError as exc:
                log.error("check worker %d: %s", index, exc)
                return 2
            checker.replace(watches)
            reporter.keep(checker.watches)
    finally:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_GRACE):
                await checker.close()
        transport.close()


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format=LOG_FORMAT)
    index = int(argv[0]) if argv else 0
    try:
        import uvloop  # the event loop and its transports in C (libuv): about half the CPU of a check
    except ImportError:
        return asyncio.run(run(index))
    return uvloop.run(run(index))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
