#!/usr/bin/env python3
"""Soak: the True PACS template under steady mixed load for a long time, with changes all the while.

    .venv/bin/python bench/soak.py                 # the full run: 60 minutes (--minutes N)
    .venv/bin/python bench/soak.py --quick         # smoke (make test): 1 minute, every interval shorter

It runs `pacslb demo` (the appliance in front of the simulated True PACS services, on loopback, its VIP
ports moved by a free offset) and, for the whole run:

  load         HTTP keep-alive (VIP 3, /inference), HTTP with a new connection per request (VIP 3, /),
               HTTPS keep-alive (VIP 2, TLS terminated and re-encrypted, /inference) and TCP (the AMQP VIP:
               a new connection, the AMQP header, Connection.Start back), each at a fixed rate
  changes      a runtime operation every second (drain / online of one real server of WFC_inference_443),
               an apply every 10 s (alternately a weight, carried by runtime operations, and settings.retries,
               which needs a reload), a rollback every minute (to the revision before the current one)
  flapping     one real server (WFC_inference_80's replica r2) stopped and started every 15 s, so that its
               health check fails and passes again
  a browser    the WebUI polled as its pages do (the dashboard fragment every 2 s, the graphs every 10 s)
               and the management API's status and metrics, with a logged-in session

Every 10 s it records the controller's resident memory, open descriptors and threads, HAProxy's processes
(how many, their memory, the age of the oldest old worker), the SQLite files' and the logs' sizes, and the
requests that failed. Failed requests are classed: in the 3 s after a reload (a keep-alive connection that
the old worker closes as the client reuses it; docs/operations.md) or outside any reload (the goal: none).

Writes bench/results/<timestamp>-soak.json, bench/soak.png (the series, plotted with matplotlib when it is
installed) and the section of bench/README.md between ``<!-- results:soak start -->`` and ``... end -->``.
Every process is started with a bounded life and stopped by its PID; traffic goes to loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from pacslb.demo.truepacs import TruePacsDemo  # noqa: E402
from pacslb.paths import StatePaths  # noqa: E402
from pacslb.templates.true_pacs import SERVICES  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/lib, the benchmarks' shared helpers
from lib.machine import git_state, machine_info, versions  # noqa: E402
from lib.procfs import ppid, rss_kb, stat_fields  # noqa: E402
from lib.procs import bounded, die_with_parent, stop_process  # noqa: E402
from lib.report import replace_section, stamp, utc_now, write_results  # noqa: E402

PYTHON = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
RELOAD_WINDOW_S = 3.0  # failures this soon after a reload are the reload's (see the module's docstring)


@dataclass(frozen=True)
class Pace:
    """How often each thing happens; --quick shortens all of them."""

    minutes: float
    sample_s: float = 10.0
    runtime_op_s: float = 1.0
    apply_s: float = 10.0
    rollback_s: float = 60.0
    flap_s: float = 15.0
    rate_per_s: float = 20.0  # requests per second of each load kind


QUICK = dict(sample_s=5.0, apply_s=5.0, rollback_s=20.0, flap_s=6.0, rate_per_s=10.0)


# --- the appliance under test -----------------------------------------------------------------------


@dataclass
class Demo:
    """One `pacslb demo` run on its own state directory, VIP port offset and real-server octet."""

    plan: TruePacsDemo
    log: Path
    lifetime_s: int
    proc: subprocess.Popen | None = None
    control_url: str = ""
    services_pid: int | None = None

    @property
    def paths(self) -> StatePaths:
        return StatePaths(self.plan.state_dir)

    def start(self, timeout: float = 240.0) -> None:
        cmd = [PYTHON, "-m", "pacslb", "demo", "--state-dir", str(self.plan.state_dir),
               "--port-offset", str(self.plan.port_offset), "--server-octet", str(self.plan.server_octet)]  # fmt: skip
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "wb")
        self.proc = subprocess.Popen(bounded(cmd, self.lifetime_s), stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, preexec_fn=die_with_parent, cwd=REPO)  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pacslb demo exited with {self.proc.returncode}; see {self.log}")
            text = self.log.read_text(errors="replace")
            if "WebUI and API: https://" in text:
                self.control_url = re.search(r"curl -X POST (\S+)/replicas/", text).group(1)
                found = re.search(r"\(PID (\d+)\)", text)
                self.services_pid = int(found.group(1)) if found else None
                return
            time.sleep(0.25)
        raise RuntimeError(f"the demo did not get ready within {timeout:g}s; see {self.log}")

    @property
    def controller_pid(self) -> int:
        """`timeout` runs the demo as its child; the demo process is the controller."""
        assert self.proc is not None
        kids = [int(p) for p in os.listdir("/proc") if p.isdigit() and ppid(int(p)) == self.proc.pid]
        return kids[0] if kids else self.proc.pid

    def stop(self) -> None:
        if self.proc is None:
            return
        subprocess.run([PYTHON, "-m", "pacslb", "stop", "--state-dir", str(self.plan.state_dir)], cwd=REPO,
                       capture_output=True, timeout=120)  # fmt: skip
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=60)
        stop_process(self.proc)


# --- what the run records ----------------------------------------------------------------------------


@dataclass
class Tally:
    """Requests per load kind, and each failure with its time and reason."""

    sent: dict[str, int] = field(default_factory=dict)
    failures: list[dict] = field(default_factory=list)
    changes: list[dict] = field(default_factory=list)  # {t, kind, outcome, method, seconds}
    polls: dict[str, int] = field(default_factory=dict)
    poll_failures: list[dict] = field(default_factory=list)

    def count(self, kind: str) -> None:
        self.sent[kind] = self.sent.get(kind, 0) + 1

    def reload_times(self) -> list[float]:
        return [c["t"] for c in self.changes if c.get("method") == "reload"]


def classify(failures: list[dict], reloads: list[float]) -> dict[str, int]:
    """How many failures fell in a reload's window, and how many outside every one."""
    inside = sum(1 for f in failures if any(0 <= f["t"] - r <= RELOAD_WINDOW_S for r in reloads))
    return {"in_reload_window": inside, "outside_reloads": len(failures) - inside}


# --- load -------------------------------------------------------------------------------------------


async def paced(stop: asyncio.Event, rate: float, once) -> None:
    """Call `once()` `rate` times a second until `stop`, never two at a time (a late one is not made up)."""
    period = 1.0 / rate
    next_at = time.monotonic()
    while not stop.is_set():
        await once()
        next_at = max(next_at + period, time.monotonic())
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, next_at - time.monotonic()))


def load_tasks(demo: Demo, tally: Tally, t0: float, stop: asyncio.Event, rate: float) -> list:
    plan = demo.plan
    vip = plan.vip_address
    ctx = ssl.create_default_context(cafile=str(plan.ca_file))

    def failed(kind: str, reason: str) -> None:
        tally.failures.append({"t": round(time.monotonic() - t0, 3), "kind": kind, "reason": reason[:200]})

    async def http_requests(kind: str, client: httpx.AsyncClient, path: str) -> None:
        async def once() -> None:
            tally.count(kind)
            try:
                response = await client.get(path)
                if response.status_code != 200:
                    failed(kind, f"status {response.status_code}")
            except httpx.HTTPError as exc:
                failed(kind, f"{type(exc).__name__}: {exc}")

        async with client:
            await paced(stop, rate, once)

    async def amqp_connections() -> None:
        port = plan.vip_port("WFC_RMQAMQP")

        async def once() -> None:
            tally.count("tcp")
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(vip, port), 5)
                try:
                    writer.write(b"AMQP\x00\x00\x09\x01")
                    data = await asyncio.wait_for(reader.read(4096), 5)
                    if not data.startswith(b"\x01"):  # a method frame: Connection.Start
                        failed("tcp", f"no Connection.Start: {data[:20]!r}")
                finally:
                    writer.close()
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()
            except (OSError, asyncio.TimeoutError) as exc:
                failed("tcp", f"{type(exc).__name__}: {exc}")

        await paced(stop, rate, once)

    http_base = f"http://{vip}:{plan.vip_port('WFC_http')}"
    https_base = f"https://{vip}:{plan.vip_port('WFC_443')}"
    timeout = httpx.Timeout(5.0)
    return [
        http_requests("http-keepalive", httpx.AsyncClient(base_url=http_base, timeout=timeout), "/inference"),
        http_requests(
            "http-close", httpx.AsyncClient(base_url=http_base, timeout=timeout, headers={"Connection": "close"}), "/"
        ),  # fmt: skip
        http_requests("https-keepalive", httpx.AsyncClient(base_url=https_base, timeout=timeout, verify=ctx), "/inference"),
        amqp_connections(),
    ]


# --- changes -----------------------------------------------------------------------------------------


def controller_client(demo: Demo) -> httpx.AsyncClient:
    # a new connection per request, as the CLI makes them: a kept-alive one that the server closes as the
    # client reuses it would fail the client, not the appliance
    transport = httpx.AsyncHTTPTransport(uds=str(demo.paths.controller_socket), limits=httpx.Limits(max_keepalive_connections=0))
    return httpx.AsyncClient(transport=transport, base_url="http://pacslb/api/v1", timeout=120)


def first_real_server(config: dict, service: str) -> str:
    vs = next(v for v in config["virtual_services"] if v["name"] == service)
    return vs["real_servers"][0]["name"]


async def change_tasks(demo: Demo, tally: Tally, t0: float, stop: asyncio.Event, pace: Pace) -> list:
    api = controller_client(demo)
    first = (await api.get("/revisions", params={"limit": 1})).json()
    config = (await api.get(f"/revisions/{first['current']}")).json()["config"]
    drained = first_real_server(config, "WFC_inference_443")
    weighted = first_real_server(config, "WFC_inference_80")

    def record(kind: str, started: float, response: httpx.Response) -> None:
        body = response.json()
        tally.changes.append({"t": round(started - t0, 3), "kind": kind, "outcome": body.get("outcome"),
                              "method": (body.get("engine") or {}).get("method"),
                              "seconds": round(time.monotonic() - started, 3)})  # fmt: skip

    async def guarded(kind: str, coro) -> None:
        started = time.monotonic()
        try:
            record(kind, started, await coro)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            tally.changes.append({"t": round(started - t0, 3), "kind": kind, "outcome": f"error: {type(exc).__name__} {exc}"})

    def surviving(kind: str, once):
        """A change whose reading of the current revision fails (the controller API closing a kept-alive
        connection as it is reused) is recorded as an error of the client, and the run goes on."""

        async def attempt() -> None:
            try:
                await once()
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                tally.changes.append({"t": round(time.monotonic() - t0, 3), "kind": kind,
                                      "outcome": f"client error: {type(exc).__name__} {exc}"})  # fmt: skip

        return attempt

    async def runtime_ops() -> None:
        states = ["drain", "online"]
        i = 0

        async def once() -> None:
            nonlocal i
            body = {"state": states[i % 2], "author": "soak", "message": "soak runtime op"}
            i += 1
            await guarded("runtime-op", api.post(f"/virtual-services/WFC_inference_443/real-servers/{drained}/state", json=body))

        await paced(stop, 1.0 / pace.runtime_op_s, surviving("runtime-op", once))

    async def applies() -> None:
        i = 0

        async def once() -> None:
            nonlocal i
            i += 1
            current = (await api.get("/revisions", params={"limit": 1})).json()["current"]
            data = (await api.get(f"/revisions/{current}")).json()["config"]
            if i % 2:  # a weight: runtime operations
                vs = next(v for v in data["virtual_services"] if v["name"] == "WFC_inference_80")
                rs = next(r for r in vs["real_servers"] if r["name"] == weighted)
                rs["weight"] = 90 if rs.get("weight", 100) == 100 else 100
                kind = "apply-runtime"
            else:  # a setting HAProxy reads at start: a reload
                data.setdefault("settings", {})["retries"] = 2 if data["settings"].get("retries", 3) == 3 else 3
                kind = "apply-reload"
            body = {"config": data, "base_dir": str(demo.plan.state_dir), "author": "soak", "message": kind}
            await guarded(kind, api.post("/apply", json=body))

        await asyncio.sleep(pace.apply_s / 2)  # not in step with the rollbacks
        await paced(stop, 1.0 / pace.apply_s, surviving("apply", once))

    async def rollbacks() -> None:
        async def once() -> None:
            current = (await api.get("/revisions", params={"limit": 1})).json()["current"]
            body = {"author": "soak", "message": "soak rollback"}
            await guarded("rollback", api.post(f"/revisions/{current - 1}/rollback", json=body))

        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), pace.rollback_s)
        await paced(stop, 1.0 / pace.rollback_s, surviving("rollback", once))

    async def flapping() -> None:
        control = httpx.AsyncClient(base_url=demo.control_url, timeout=10)
        up = True

        async def once() -> None:
            nonlocal up
            up = not up
            verb = "start" if up else "stop"
            with contextlib.suppress(httpx.HTTPError):
                await control.post(f"/replicas/WFC_inference_80/r2/{verb}")
            tally.changes.append({"t": round(time.monotonic() - t0, 3), "kind": f"replica-{verb}", "outcome": "done"})

        async with control:
            await paced(stop, 1.0 / pace.flap_s, once)
            if not up:
                await control.post("/replicas/WFC_inference_80/r2/start")

    return [runtime_ops(), applies(), rollbacks(), flapping()]


# --- the browser -------------------------------------------------------------------------------------


async def browser_task(demo: Demo, tally: Tally, t0: float, stop: asyncio.Event) -> None:
    """Log in to the WebUI as the admin the demo made, then poll what its pages poll."""
    url = demo.paths.management_url.read_text().strip().rstrip("/")
    password = demo.paths.initial_admin_password.read_text().strip()
    async with httpx.AsyncClient(base_url=url, verify=False, timeout=20) as web:  # the demo's self-signed certificate
        # the first admin's password is a one-time password: choose one first, as a person does at the first login
        first = await web.post("/api/v1/login", json={"username": "admin", "password": password})
        if first.status_code == 200 and first.json().get("must_change_password"):
            one_time, password = password, f"soak {os.urandom(12).hex()}"
            changed = await web.put("/api/v1/users/admin/password", json={"password": password, "current_password": one_time},
                                    headers={"X-CSRF-Token": first.json()["csrf_token"]})  # fmt: skip
            if changed.status_code != 200:
                raise RuntimeError(f"the soak could not change the one-time password: {changed.status_code} {changed.text}")
        response = await web.post("/login", data={"username": "admin", "password": password}, headers={"Origin": url})
        if response.status_code not in (200, 303) or "pacslb_session" not in str(web.cookies.keys()):
            raise RuntimeError(f"the soak could not log in to the WebUI: {response.status_code}")
        polls = {"/fragments/dashboard": 2.0, "/fragments/graphs": 10.0, "/api/v1/status": 5.0, "/metrics": 15.0}
        due = dict.fromkeys(polls, 0.0)
        while not stop.is_set():
            now = time.monotonic()
            for path, every in polls.items():
                if now < due[path]:
                    continue
                due[path] = now + every
                tally.polls[path] = tally.polls.get(path, 0) + 1
                try:
                    got = await web.get(path)
                    if got.status_code != 200:
                        tally.poll_failures.append({"t": round(now - t0, 3), "path": path, "reason": f"status {got.status_code}"})
                except httpx.HTTPError as exc:
                    tally.poll_failures.append({"t": round(now - t0, 3), "path": path, "reason": f"{type(exc).__name__}"})
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)


# --- samples -----------------------------------------------------------------------------------------


def process_age_s(pid: int) -> float | None:
    fields = stat_fields(pid)
    if fields is None:
        return None
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return uptime - int(fields[21]) / CLK_TCK  # field 22: start time in clock ticks after boot


def haproxy_processes(paths: StatePaths) -> dict[str, Any]:
    try:
        master = int(paths.haproxy_pid.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return {"workers": 0, "rss_kb": 0, "oldest_old_worker_s": None}
    workers = [int(p) for p in os.listdir("/proc") if p.isdigit() and ppid(int(p)) == master]
    ages = sorted((age for age in (process_age_s(w) for w in workers) if age is not None), reverse=True)
    return {
        "workers": len(workers),
        "rss_kb": sum(rss_kb(p).get("VmRSS", 0) for p in [master, *workers]),
        # the youngest worker is the current one; any other is an old one finishing its connections
        "oldest_old_worker_s": round(ages[0], 1) if len(ages) > 1 else None,
    }


def files_size(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        with contextlib.suppress(OSError):
            total += path.stat().st_size
    return total


def sample(demo: Demo, tally: Tally, t: float) -> dict[str, Any]:
    pid = demo.controller_pid
    status = rss_kb(pid)
    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        threads = int(next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                           if line.startswith("Threads:")))  # fmt: skip
    except (OSError, StopIteration):
        fds = threads = 0
    root = demo.plan.state_dir
    return {
        "t": round(t, 1),
        "controller_rss_kb": status.get("VmRSS", 0),
        "controller_fds": fds,
        "controller_threads": threads,
        "haproxy": haproxy_processes(demo.paths),
        "sqlite_bytes": files_size(list(root.glob("*.sqlite*"))),
        "log_bytes": files_size([p for p in root.rglob("*.log*") if p.is_file()]),
        "requests": sum(tally.sent.values()),
        "failed": len(tally.failures),
        "changes": len(tally.changes),
    }


# --- the run -----------------------------------------------------------------------------------------


async def soak(demo: Demo, pace: Pace) -> tuple[Tally, list[dict]]:
    tally, samples = Tally(), []
    stop = asyncio.Event()
    t0 = time.monotonic()
    tasks = [asyncio.create_task(c) for c in load_tasks(demo, tally, t0, stop, pace.rate_per_s)]
    tasks += [asyncio.create_task(c) for c in await change_tasks(demo, tally, t0, stop, pace)]
    tasks.append(asyncio.create_task(browser_task(demo, tally, t0, stop)))
    end = t0 + pace.minutes * 60
    try:
        while time.monotonic() < end:
            samples.append(await asyncio.to_thread(sample, demo, tally, time.monotonic() - t0))
            s = samples[-1]
            print(f"[{s['t']:7.0f}s] rss {s['controller_rss_kb'] / 1024:.1f} MB  fds {s['controller_fds']}  "
                  f"threads {s['controller_threads']}  haproxy workers {s['haproxy']['workers']}  "
                  f"requests {s['requests']}  failed {s['failed']}  changes {s['changes']}", flush=True)  # fmt: skip
            for task in tasks:
                if task.done() and task.exception() is not None:
                    raise task.exception()
            await asyncio.sleep(max(0.0, min(pace.sample_s, end - time.monotonic())))
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    samples.append(await asyncio.to_thread(sample, demo, tally, time.monotonic() - t0))
    return tally, samples


def growth(samples: list[dict], key: str, start_min: float, end_min: float) -> dict[str, Any]:
    """The value at `start_min` and at `end_min` (the nearest samples) and the growth between them."""

    def at(minute: float) -> float:
        return min(samples, key=lambda s: abs(s["t"] - minute * 60))[key]

    a, b = at(start_min), at(end_min)
    return {"from": a, "to": b, "growth_pct": round(100.0 * (b - a) / a, 2) if a else None}


def late_means(samples: list[dict], key: str) -> dict[str, Any]:
    """The mean of `key` over 40-60% of the run and over its last sixth: growth once the stores have filled up to
    their bounds (revisions are pruned to settings.revisions.keep), where a leak would still show."""
    end = samples[-1]["t"]

    def mean(a: float, b: float) -> float:
        values = [s[key] for s in samples if a * end <= s["t"] <= b * end]
        return sum(values) / len(values) if values else 0.0

    a, b = mean(0.4, 0.6), mean(5 / 6, 1.0)
    return {"from": a, "to": b, "growth_pct": round(100.0 * (b - a) / a, 2) if a else None,
            "minutes": [round(0.4 * end / 60), round(0.6 * end / 60), round(5 / 6 * end / 60), round(end / 60)]}  # fmt: skip


def summarize(tally: Tally, samples: list[dict], pace: Pace) -> dict[str, Any]:
    minutes = samples[-1]["t"] / 60
    start, end = (10.0, 60.0) if minutes >= 60 else (minutes / 6, minutes)
    outcomes: dict[str, dict[str, int]] = {}
    for change in tally.changes:
        by_kind = outcomes.setdefault(change["kind"], {})
        by_kind[str(change.get("outcome"))] = by_kind.get(str(change.get("outcome")), 0) + 1
    old_ages = [s["haproxy"]["oldest_old_worker_s"] for s in samples if s["haproxy"]["oldest_old_worker_s"] is not None]
    return {
        "minutes": round(minutes, 2),
        "window_minutes": [round(start, 2), round(end, 2)],
        "requests": dict(tally.sent),
        "failed": len(tally.failures),
        "failed_classes": classify(tally.failures, tally.reload_times()),
        "failures_by_kind": {k: sum(1 for f in tally.failures if f["kind"] == k) for k in tally.sent},
        "changes": outcomes,
        "reloads": len(tally.reload_times()),
        "polls": dict(tally.polls),
        "poll_failures": len(tally.poll_failures),
        "rss": growth(samples, "controller_rss_kb", start, end),
        "rss_late": late_means(samples, "controller_rss_kb"),
        "fds": growth(samples, "controller_fds", start, end),
        "threads": growth(samples, "controller_threads", start, end),
        "max_haproxy_workers": max(s["haproxy"]["workers"] for s in samples),
        "oldest_old_worker_s": max(old_ages) if old_ages else None,
        "sqlite_bytes": growth(samples, "sqlite_bytes", start, end),
        "log_bytes_max": max(s["log_bytes"] for s in samples),
    }


def plot(samples: list[dict], path: Path) -> bool:
    """The series as one PNG; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    minutes = [s["t"] / 60 for s in samples]
    series = [
        ("controller RSS (MB)", [s["controller_rss_kb"] / 1024 for s in samples]),
        ("controller open descriptors", [s["controller_fds"] for s in samples]),
        ("controller threads", [s["controller_threads"] for s in samples]),
        ("HAProxy processes' RSS (MB)", [s["haproxy"]["rss_kb"] / 1024 for s in samples]),
        ("HAProxy workers", [s["haproxy"]["workers"] for s in samples]),
        ("SQLite files (MB)", [s["sqlite_bytes"] / 1e6 for s in samples]),
        ("logs (MB)", [s["log_bytes"] / 1e6 for s in samples]),
        ("failed requests (cumulative)", [s["failed"] for s in samples]),
    ]
    fig, axes = plt.subplots(4, 2, figsize=(12, 11), sharex=True)
    for ax, (title, ys) in zip(axes.flat, series, strict=True):
        ax.plot(minutes, ys, linewidth=1.2)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    for ax in axes[-1]:
        ax.set_xlabel("minutes")
    fig.suptitle("pacslb soak: True PACS template, mixed load, a change every second")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def section(doc: dict) -> str:
    s = doc["summary"]
    a, b = s["window_minutes"]
    reqs = sum(s["requests"].values())
    oldest = "-" if s["oldest_old_worker_s"] is None else f"{s['oldest_old_worker_s']:.0f} s"
    late = s["rss_late"]["minutes"]
    changes = ", ".join(f"{k}: " + ", ".join(f"{n} {o}" for o, n in v.items()) for k, v in s["changes"].items())

    def g(key: str, unit: str, scale: float = 1.0) -> str:
        x = s[key]
        pct = "-" if x["growth_pct"] is None else f"{x['growth_pct']:+.1f}%"
        number = "{:.1f}" if scale != 1.0 else "{:.0f}"
        return f"{number.format(x['from'] / scale)}{unit} -> {number.format(x['to'] / scale)}{unit} ({pct})"

    lines = [
        f"Run {doc['started']} on {doc['machine'].get('nproc', '?')} CPUs, {s['minutes']:.1f} minutes "
        f"({'quick smoke' if doc['quick'] else 'full run'}); pacslb {doc['git']}.",
        "",
        "| what | measured | goal |",
        "|---|---|---|",
        f"| requests | {reqs:,} ({', '.join(f'{k} {v:,}' for k, v in s['requests'].items())}) | |",
        f"| failed requests outside reloads | {s['failed_classes']['outside_reloads']} | 0 |",
        f"| failed requests within {RELOAD_WINDOW_S:g} s of a reload | {s['failed_classes']['in_reload_window']} "
        f"({s['reloads']} reloads) | documented |",
        f"| controller RSS, minute {a:g} -> {b:g} | {g('rss', ' MB', 1024)} | growth < 5% |",
        f"| controller RSS, mean of minutes {late[0]}-{late[1]} -> {late[2]}-{late[3]} | {g('rss_late', ' MB', 1024)} | flat |",
        f"| controller descriptors, minute {a:g} -> {b:g} | {g('fds', '')} | growth < 5% |",
        f"| controller threads, minute {a:g} -> {b:g} | {g('threads', '')} | flat |",
        f"| HAProxy workers at once (max) | {s['max_haproxy_workers']} | |",
        f"| oldest old worker seen | {oldest} | < hard_stop_after (1 h) |",
        f"| SQLite files, minute {a:g} -> {b:g} | {g('sqlite_bytes', ' MB', 1e6)} | bounded by pruning |",
        f"| logs, largest total | {s['log_bytes_max'] / 1e6:.1f} MB | rotated (controller 10 MB x 5, HAProxy 64 MB) |",
        f"| WebUI/API polls | {sum(s['polls'].values()):,}, {s['poll_failures']} failed | 0 failed |",
        "",
        f"Changes: {changes}.",
        "",
    ]
    if doc.get("plot"):
        lines += [f"![soak series]({doc['plot']})", ""]
    return "\n".join(lines) + "\n"


# Below Linux's ephemeral ports (32768-60999): every VIP port (up to 9094 + offset) and the WAF tier's ports (10080 +
# offset on) stay out of the range that outgoing connections take their ports from, so none is held when bound.
PORT_OFFSETS = (20000, 22600)


def free_port_offset(vip: str = "127.0.0.1") -> int:
    """A VIP port offset whose six template ports are free on `vip` now."""
    for _ in range(200):
        offset = random.randrange(*PORT_OFFSETS)
        if all(_port_free(vip, spec.port + offset) for spec in SERVICES if spec.port is not None):
            return offset
    raise RuntimeError("no VIP port offset with six free ports")


def _port_free(address: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=None, help="how long (default 60; 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a 1-minute smoke with shorter intervals")
    parser.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--readme", type=Path, default=REPO / "bench" / "README.md")
    parser.add_argument("--no-readme", action="store_true")
    parser.add_argument("--plot", type=Path, default=REPO / "bench" / "soak.png")
    parser.add_argument("--report", type=Path, help="run nothing: the section of an earlier run's results file (README too)")
    args = parser.parse_args(argv)
    if args.report is not None:
        doc = json.loads(args.report.read_text())
        doc["summary"] = summarize(Tally(failures=doc["failures"]), doc["samples"], Pace(**doc["pace"])) | {
            k: v for k, v in doc["summary"].items() if k in ("requests", "failed", "failed_classes", "failures_by_kind",
                                                         "changes", "reloads", "polls", "poll_failures")}  # fmt: skip
        print(section(doc))
        if not args.no_readme:
            replace_section(args.readme, "soak", section(doc))
        return 0
    pace = Pace(minutes=args.minutes or 1.0, **QUICK) if args.quick else Pace(minutes=args.minutes or 60.0)
    if os.geteuid() != 0:
        print("bench/soak.py runs the demo, whose simulated real servers listen on ports below 1024: run it as root",
              file=sys.stderr)  # fmt: skip
        return 2
    started = utc_now()
    work = Path(tempfile.mkdtemp(prefix="pacslb-soak-"))
    octet = random.randrange(200, 255)
    plan = TruePacsDemo(work / "state", port_offset=free_port_offset(), server_octet=octet)
    demo = Demo(plan, work / "demo.log", lifetime_s=int(pace.minutes * 60 + 600))
    try:
        demo.start()
        tally, samples = asyncio.run(soak(demo, pace))
    finally:
        demo.stop()
    summary = summarize(tally, samples, pace)
    commit, dirty = git_state()
    doc = {
        "started": started.isoformat(timespec="seconds"),
        "quick": args.quick,
        "git": f"{commit}{' (uncommitted changes)' if dirty else ''}",
        "machine": machine_info(),
        "versions": versions(("haproxy",)),
        "pace": pace.__dict__,
        "summary": summary,
        "samples": samples,
        "failures": tally.failures[:500],
        "poll_failures": tally.poll_failures[:500],
        "changes": tally.changes,
    }
    if not args.quick and plot(samples, args.plot):
        doc["plot"] = args.plot.name
    path = write_results(args.results_dir, f"{stamp(started)}-soak.json", doc)
    print(section(doc))
    print(f"results: {path}  (demo log: {demo.log})")
    if not args.no_readme and (not args.quick or args.readme != parser.get_default("readme")):
        replace_section(args.readme, "soak", section(doc))
    return 1 if summary["failed_classes"]["outside_reloads"] else 0


if __name__ == "__main__":
    sys.exit(main())
