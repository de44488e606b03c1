"""The alerts subsystem: events in, messages out, without ever making the appliance wait.

    emit(alert)  (from any thread; never blocks)
        -> the flap policy (flap.py): the first change of a thing at once, then one summary per interval
        -> each receiver that wants the event at its severity: its own bounded queue (a full one drops, counted)
        -> its own worker: deliver, retry with back-off (1s, 2s, 4s, ... at most 60s), then drop (counted)

Deliveries (SMTP, HTTP, syslog: blocking clients) run on one thread per receiver, so a receiver that hangs holds
none of the threads the appliance's changes use, nor another receiver's. Once a second the service also looks at the appliance (a callable the
composition root gives: real servers, virtual services, engine restarts; watch.py says what changed), and once a
day at the certificates the configuration names (certificates.py).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..model import Config
from ..model.alerts import EmailReceiver, SyslogReceiver, WebhookReceiver
from . import certificates, events, receivers, watch
from .events import SEVERITY_RANK, Alert
from .flap import FlapPolicy

log = logging.getLogger("pacslb.alerts")

LOOK_INTERVAL_S = 1.0  # a real server that goes down is told within about a second of the status showing it
CERTIFICATE_INTERVAL_S = 86_400.0
MAX_BACKOFF_S = 60.0
RECENT = 50  # the last alerts kept for `pacslb alerts status`
STOP_TIMEOUT_S = 5.0

Receiver = EmailReceiver | WebhookReceiver | SyslogReceiver


@dataclass
class Counters:
    sent: int = 0
    failed_attempts: int = 0
    dropped_full: int = 0  # the queue was full
    dropped_failed: int = 0  # every attempt failed
    last_error: str | None = None
    last_sent_at: float | None = None

    @property
    def dropped(self) -> int:
        return self.dropped_full + self.dropped_failed


@dataclass
class Outbox:
    """One receiver's queue, counters and worker."""

    receiver: Receiver
    limit: int
    queue: collections.deque = field(default_factory=collections.deque)
    counters: Counters = field(default_factory=Counters)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None
    # its own thread: a receiver that hangs delays only itself (the thread is made at the first delivery)
    executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="pacslb-alert"))

    closed: bool = False

    def close(self) -> None:
        """Stop the worker: it ends at its next step even when the cancellation is lost (asyncio.wait_for in
        Python 3.11 can swallow one that comes as the delivery finishes)."""
        self.closed = True
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.ready.set()
        if self.task is not None:
            self.task.cancel()

    def wants(self, alert: Alert) -> bool:
        return alert.event == "test" or (
            alert.event in self.receiver.events and SEVERITY_RANK[alert.severity] >= SEVERITY_RANK[self.receiver.min_severity]
        )

    def put(self, alert: Alert) -> bool:
        if len(self.queue) >= self.limit:
            self.counters.dropped_full += 1
            return False
        self.queue.append(alert)
        self.ready.set()
        return True

    def status(self) -> dict[str, Any]:
        c = self.counters
        return {"name": self.receiver.name, "type": self.receiver.type, "queued": len(self.queue), "sent": c.sent,
                "dropped": c.dropped, "dropped_queue_full": c.dropped_full, "dropped_undeliverable": c.dropped_failed,
                "failed_attempts": c.failed_attempts, "last_error": c.last_error, "last_sent_at": c.last_sent_at}  # fmt: skip


async def deliver(receiver: Receiver, alert: Alert, node: str, executor: ThreadPoolExecutor | None = None) -> None:
    """Deliver one alert to one receiver on `executor`, bounded by its timeout (raises receivers.DeliveryError)."""
    bound = receiver.timeout.seconds + 5  # the libraries' own timeouts apply per step; this bounds the whole
    if isinstance(receiver, WebhookReceiver):
        send = functools.partial(receivers.send_webhook, receiver, alert, node)
    elif isinstance(receiver, EmailReceiver):
        send = functools.partial(receivers.send_email, receiver, alert, node)
    else:
        send = functools.partial(receivers.send_syslog, receiver, alert, node, os.getpid())
    try:
        await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(executor, send), bound)
    except asyncio.TimeoutError:
        raise receivers.DeliveryError(f"no answer within {bound:g}s") from None
    except RuntimeError:  # the receiver's thread was shut down (removed by a change, or the appliance stops)
        raise receivers.DeliveryError("the receiver was removed or the appliance stops") from None


class AlertService:
    """A subsystem of the appliance (started after the health checks, told of every applied configuration)."""

    name = "alerts"

    def __init__(
        self,
        look: Callable[[], watch.Look] | None = None,
        certificate_files: Callable[[Config], list[tuple[str, Path]]] | None = None,
        node: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._look = look
        self._certificate_files = certificate_files
        self.node = node or socket.gethostname()
        self._clock = clock
        self.config: Config | None = None
        self.outboxes: dict[str, Outbox] = {}
        self.flap = FlapPolicy(300.0)
        self.recent: collections.deque[Alert] = collections.deque(maxlen=RECENT)
        self._look_executor = ThreadPoolExecutor(1, thread_name_prefix="pacslb-alerts-look")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task] = []
        self._last_look: watch.Look | None = None
        self._check_certificates_now = asyncio.Event()

    # --- events in -----------------------------------------------------------------------------------

    def emit(self, alert: Alert) -> None:
        """Take an alert from anywhere (any thread); returns at once."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._offer(alert)
        else:
            loop.call_soon_threadsafe(self._offer, alert)

    def _offer(self, alert: Alert) -> None:
        for out in self.flap.offer(alert, self._clock()):
            self._fan_out(out)

    def _fan_out(self, alert: Alert) -> None:
        self.recent.append(alert)
        level = logging.WARNING if alert.severity != "info" else logging.INFO
        log.log(level, "alert %s: %s", alert.event, alert.message)
        for outbox in self.outboxes.values():
            if outbox.wants(alert) and not outbox.put(alert):
                log.warning("alert receiver %s: queue full (%d), alert dropped", outbox.receiver.name, outbox.limit)

    # --- delivery --------------------------------------------------------------------------------------

    async def _work(self, outbox: Outbox) -> None:
        while not outbox.closed:
            while not outbox.queue and not outbox.closed:
                outbox.ready.clear()
                await outbox.ready.wait()
            if outbox.closed:
                return
            alert = outbox.queue[0]
            attempt = 0
            while not outbox.closed:
                receiver = outbox.receiver  # a change may replace it while alerts wait
                try:
                    await deliver(receiver, alert, self.node, outbox.executor)
                except receivers.DeliveryError as exc:
                    outbox.counters.failed_attempts += 1
                    outbox.counters.last_error = str(exc)
                    if attempt >= self._retries():
                        outbox.counters.dropped_failed += 1
                        log.warning("alert receiver %s: %s; alert dropped after %d attempts", receiver.name, exc, attempt + 1)
                        break
                    delay = min(MAX_BACKOFF_S, 2.0**attempt)
                    attempt += 1
                    log.info("alert receiver %s: %s; retry %d in %gs", receiver.name, exc, attempt, delay)
                    await asyncio.sleep(delay)
                    continue
                outbox.counters.sent += 1
                outbox.counters.last_sent_at = self._clock()
                break
            if outbox.queue and outbox.queue[0] is alert:
                outbox.queue.popleft()

    def _retries(self) -> int:
        alerts = self.config.alerts if self.config is not None else None
        return alerts.retries if alerts is not None else 0

    async def test(self, name: str | None = None) -> list[dict[str, Any]]:
        """Send a test alert to each receiver (or the one called `name`) at once, past queues and flap grouping, all
        at the same time (each bounded by its timeout); the result of each delivery. Unknown name: an empty list."""
        chosen = [o for o in self.outboxes.values() if name is None or o.receiver.name == name]

        async def one(outbox: Outbox) -> dict[str, Any]:
            try:
                await deliver(outbox.receiver, events.test_alert(outbox.receiver.name, self._clock()), self.node,
                              outbox.executor)  # fmt: skip
            except receivers.DeliveryError as exc:
                outbox.counters.failed_attempts += 1
                outbox.counters.last_error = str(exc)
                return {"receiver": outbox.receiver.name, "ok": False, "error": str(exc)}
            outbox.counters.sent += 1
            outbox.counters.last_sent_at = self._clock()
            return {"receiver": outbox.receiver.name, "ok": True, "error": None}

        return list(await asyncio.gather(*(one(o) for o in chosen)))

    # --- looking ----------------------------------------------------------------------------------------

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            for out in self.flap.tick(self._clock()):
                self._fan_out(out)
            if not self.outboxes:
                self._last_look = None  # nobody to tell: no looking (HAProxy's stats once a second), and no baseline
            elif self._look is not None:
                try:
                    look = await loop.run_in_executor(self._look_executor, self._look)
                except Exception:  # a failed look (HAProxy restarting) is retried next second; logged
                    log.debug("alerts: cannot look at the appliance", exc_info=True)
                else:
                    for alert in watch.changes(self._last_look, look, self._clock()):
                        self._offer(alert)
                    self._last_look = look
            await asyncio.sleep(LOOK_INTERVAL_S)

    async def _watch_certificates(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._check_certificates_now.clear()
            config = self.config
            if config is not None and config.alerts is not None and self._certificate_files is not None:
                files = self._certificate_files(config)
                days = config.alerts.certificate_expiry_days
                found = await loop.run_in_executor(self._look_executor, certificates.expiring, files, days, self._clock())
                for alert in found:
                    self._offer(alert)
            with contextlib.suppress(asyncio.TimeoutError):  # a day, or until alerts are first configured
                await asyncio.wait_for(self._check_certificates_now.wait(), CERTIFICATE_INTERVAL_S)

    # --- subsystem ----------------------------------------------------------------------------------------

    def _take(self, config: Config) -> None:
        """Receivers follow the configuration; a receiver kept by name keeps its queue and counters."""
        self.config = config
        section = config.alerts
        wanted = {r.name: r for r in section.receivers} if section is not None else {}
        for name in list(self.outboxes):
            if name not in wanted:
                self.outboxes.pop(name).close()
        for name, receiver in wanted.items():
            outbox = self.outboxes.get(name)
            if outbox is None:
                outbox = self.outboxes[name] = Outbox(receiver, section.queue_size)  # type: ignore[union-attr]
                outbox.task = asyncio.get_running_loop().create_task(self._work(outbox))
            else:
                outbox.receiver, outbox.limit = receiver, section.queue_size  # type: ignore[union-attr]
        interval = section.flap_interval.seconds if section is not None else 300.0
        if interval != self.flap.interval_s:
            self.flap.interval_s = interval

    async def start(self, config: Config) -> None:
        self._loop = asyncio.get_running_loop()
        self._take(config)
        self._tasks = [self._loop.create_task(self._watch()), self._loop.create_task(self._watch_certificates())]
        if self.outboxes:
            log.info("alerts: %d receivers (%s)", len(self.outboxes), ", ".join(self.outboxes))

    async def applied(self, config: Config) -> None:
        before = self.config.alerts if self.config is not None else None
        self._take(config)
        after = config.alerts
        if after is not None and (before is None or before.certificate_expiry_days != after.certificate_expiry_days):
            self._check_certificates_now.set()  # alerts just configured (or the horizon moved): look now, not tomorrow

    async def stop(self) -> None:
        tasks = self._tasks + [o.task for o in self.outboxes.values() if o.task is not None]
        for outbox in self.outboxes.values():
            outbox.close()
        for task in self._tasks:
            task.cancel()
        if tasks:
            # bounded all the same: the appliance's shutdown must never wait on a receiver (a delivery's thread ends
            # at its own timeout, at most 60s, whatever happens here)
            _, pending = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)
            if pending:
                log.warning("alerts: %d deliveries did not stop within %gs; left behind", len(pending), STOP_TIMEOUT_S)
        self._tasks = []
        self._loop = None
        self._look_executor.shutdown(wait=False, cancel_futures=True)

    def status(self) -> dict[str, Any]:
        """Queues and counters per receiver, and the last alerts (for `pacslb alerts status` and the API)."""
        return {
            "node": self.node,
            "receivers": [o.status() for o in self.outboxes.values()],
            "held_by_flap_grouping": self.flap.held,
            "recent": [a.as_json(self.node) for a in reversed(self.recent)],
        }
