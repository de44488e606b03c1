#!/usr/bin/env python3
"""Fault matrix: each fault under load, with the gap a client sees and the requests that fail (run as root).

    .venv/bin/python bench/faults.py                  # every fault, 3 rounds of each kill (about 5 minutes)
    .venv/bin/python bench/faults.py --quick          # smoke (make test): one worker kill, the full disk
    .venv/bin/python bench/faults.py --faults worker-kill,disk-full --rounds 5

The faults:

  controller-kill   kill -9 of the controller (`pacslb up`), then `pacslb up` again (it adopts HAProxy)
  worker-kill       kill -9 of HAProxy's current worker
  master-kill       kill -9 of HAProxy's master
  keepalived-kill   kill -9 of the master node's keepalived in an HA pair (network namespaces: the bed of
                    tests/netns/ha_support.py), the supervisor starts it again
  freeze-CHECK      SIGSTOP of one of two real servers of a service checked by CHECK (http, connect,
                    dicom-echo, hl7, amqp), until the check marks it down (or 10 s), then SIGCONT
  disk-full         the state directory (a 64 MiB tmpfs) filled, then an apply and a runtime operation
  read-only         the state directory remounted read-only, then an apply and a runtime operation
  clock-jump        the wall clock of the controller and HAProxy jumps 2 h ahead, back, 2 h behind, back
                    (bench/lib/clockshift.c, preloaded: the monotonic clock stays, as in a real jump)

A client sends one request after another, each on a new connection (100 ms connect timeout, so that a
lost connection is retried at once; 2 s for the answer), and records when each started and ended and
whether it was answered. A fault's gap is the time from the last answer before its first failed request
to the first answer after its last one (with no failure: the longest pause between two answers).

Writes bench/results/<timestamp>-faults.json and the section of bench/README.md between
``<!-- results:faults start -->`` and ``... end -->``. Loopback and the bed's own namespaces only; every
process is stopped by PID; the tmpfs is unmounted and every directory removed, also after a failure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "health"))

from lib.machine import git_state, machine_info, versions  # noqa: E402
from lib.peers import PEER_CODE  # noqa: E402
from lib.procfs import ppid  # noqa: E402
from lib.procs import bounded, kill_group  # noqa: E402
from lib.report import replace_section, stamp, utc_now, write_results  # noqa: E402

from pacslb.health.amqp import AMQPProbe  # noqa: E402
from pacslb.health.base import Target  # noqa: E402
from pacslb.health.dicom import DicomEchoProbe  # noqa: E402
from pacslb.health.hl7 import HL7Probe  # noqa: E402
from support.appliance import Appliance  # noqa: E402
from support.configs import config_text, real_server, service  # noqa: E402
from support.net import accepts, free_port  # noqa: E402
from support.wait import wait_until  # noqa: E402

FREEZE_CHECKS = ("http", "connect", "dicom-echo", "hl7", "amqp")
PROCESS_FAULTS = ("controller-kill", "worker-kill", "master-kill")
FAULTS = (*PROCESS_FAULTS, "keepalived-kill", *(f"freeze-{c}" for c in FREEZE_CHECKS), "disk-full", "read-only", "clock-jump")
QUICK_FAULTS = ("worker-kill", "disk-full")
CONNECT_TIMEOUT = 0.1
ANSWER_TIMEOUT = 2.0
CHECK = "interval: 300ms, timeout: 300ms, rise: 1, fall: 2"
STARTUP_TIMEOUT = 180.0  # a loaded 2-core machine (a CI run beside) starts Python slowly


# --- the client ------------------------------------------------------------------------------------


def http_once(host: str, port: int) -> tuple[bool, str]:
    """One GET on a new connection: answered with 200, or why not."""
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT) as s:
            s.settimeout(ANSWER_TIMEOUT)
            s.sendall(f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(4096):
                data += chunk
    except OSError as exc:
        return False, type(exc).__name__
    return data.startswith(b"HTTP/1.") and b" 200 " in data.split(b"\r\n", 1)[0] + b" ", data[:30].decode(errors="replace")


def probe_once(probe) -> Callable[[str, int], tuple[bool, str]]:
    """A health probe of pacslb used as a client through the VIP (a DICOM echo, an HL7 message, AMQP)."""

    def once(host: str, port: int) -> tuple[bool, str]:
        result = asyncio.run(probe.probe(Target(host, port)))
        return result.up, result.reason

    return once


class Client(threading.Thread):
    """One request after another until stopped; records [start, end, ok, detail] (wall-clock seconds)."""

    def __init__(self, once: Callable[[str, int], tuple[bool, str]], host: str, port: int, pause: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.once, self.host, self.port, self.pause = once, host, port, pause
        self.records: list[list] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            start = time.time()
            ok, detail = self.once(self.host, self.port)
            self.records.append([start, time.time(), ok, detail])
            self._halt.wait(self.pause)

    def stop(self) -> list[list]:
        self._halt.set()
        self.join(30)
        return self.records


def gap(records: list[list], start: float, end: float) -> dict[str, Any]:
    """The gap of one fault window and the requests that failed in it (started before its end, ended after its start)."""
    inside = [r for r in records if r[1] >= start - 0.5 and r[0] <= end + 0.5]
    failed = [r for r in inside if not r[2] and r[1] >= start and r[0] <= end]
    ok_ends = [r[1] for r in inside if r[2]]
    if failed:
        before = [e for e in ok_ends if e <= failed[0][0]]
        after = [e for e in ok_ends if e >= failed[-1][1]]
        longest = (after[0] if after else failed[-1][1]) - (before[-1] if before else failed[0][0])
    else:
        longest = max((b - a for a, b in zip(ok_ends, ok_ends[1:], strict=False)), default=0.0)
    reasons: dict[str, int] = {}
    for r in failed:
        reasons[str(r[3])[:60]] = reasons.get(str(r[3])[:60], 0) + 1
    return {"gap_ms": round(longest * 1000, 1), "failed": len(failed), "sent": len(inside), "reasons": reasons}


def free_low_port() -> int:
    """A free TCP port below 1024 on loopback (the agent port: privileged, so that no local user can take it)."""
    for port in random.sample(range(600, 1024), 424):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 600 and 1023 on 127.0.0.1")


# --- peers and the appliance --------------------------------------------------------------------------


@dataclass
class Peer:
    """One real server process of its own (a session of its own: frozen and stopped as a group)."""

    name: str
    port: int
    process: subprocess.Popen

    def freeze(self) -> None:
        os.killpg(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.killpg(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGCONT)
        kill_group(self.process)


def start_peer(name: str, kind: str) -> Peer:
    port = free_port()
    if kind == "dicom":
        cmd = ["storescp", "--aetitle", "ARCHIVE", "--output-directory", tempfile.gettempdir(), str(port)]
    else:
        cmd = [sys.executable, "-c", PEER_CODE, kind, str(port)]
    process = subprocess.Popen(bounded(cmd, 3600), start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, cwd=REPO)  # fmt: skip
    peer = Peer(name, port, process)
    try:
        wait_until(lambda: accepts(port), 20, what=f"the {kind} real server {name}")
    except BaseException:
        peer.stop()
        raise
    return peer


# service name -> (check, peer kind, client)
FREEZE_SERVICES: dict[str, tuple[str, str, Callable[[str, int], tuple[bool, str]]]] = {
    "http": (f"{{type: http, path: /, {CHECK}}}", "http", http_once),
    "connect": (f"{{type: connect, {CHECK}}}", "http", http_once),
    "dicom-echo": (
        f"{{type: dicom-echo, called_ae: ARCHIVE, {CHECK}}}",
        "dicom",
        probe_once(DicomEchoProbe(ANSWER_TIMEOUT, called_ae="ARCHIVE")),
    ),
    "hl7": (f"{{type: hl7, {CHECK}}}", "mllp", probe_once(HL7Probe(ANSWER_TIMEOUT))),
    "amqp": (f"{{type: amqp, {CHECK}}}", "amqp", probe_once(AMQPProbe(ANSWER_TIMEOUT))),
}


@dataclass
class Bed:
    """One appliance on loopback with a service per check type, each in front of two real server processes."""

    workdir: Path
    checks: tuple[str, ...]
    state_dir: Path | None = None  # a given one (a tmpfs mount point), else a new one
    preload: dict[str, str] = field(default_factory=dict)  # environment of `pacslb up` (the clock shifter)
    peers: dict[str, list[Peer]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    appliance: Appliance | None = None
    agent_port: int = 0

    def config(self, retries: int = 3) -> str:
        services = []
        for check in self.checks:
            spec, _, _ = FREEZE_SERVICES[check]
            mode = "layer7-http" if check == "http" else "layer7-tcp"
            servers = [real_server((p.name, "127.0.0.1", p.port)) for p in self.peers[check]]
            services.append(service(f"fz-{check}", mode, "127.0.0.1", self.ports[check], servers, health_check=spec))
        self.agent_port = self.agent_port or free_low_port()  # 334 may be held by another appliance on this machine
        return config_text(
            *services, settings=f"{{max_connections: 2000, retries: {retries}, health: {{agent_port: {self.agent_port}}}}}"
        )

    def start(self) -> Appliance:
        for check in self.checks:
            kind = FREEZE_SERVICES[check][1]
            self.peers[check] = []
            for n in (1, 2):
                self.peers[check].append(start_peer(f"rs{n}", kind))
            self.ports[check] = free_port()
        self.appliance = Appliance.create(self.config(), self.workdir)
        if self.state_dir is not None:
            self.appliance.state_dir = self.state_dir
        if self.preload:
            os.environ.update(self.preload)  # the controller inherits it; HAProxy from the controller
        try:
            self.appliance.up(wait=False)
            self.appliance.wait_healthy(timeout=STARTUP_TIMEOUT)
        except BaseException:
            print(self.appliance.read_log()[-3000:], file=sys.stderr)
            raise
        finally:
            for key in self.preload:
                os.environ.pop(key, None)
        wait_until(lambda: all(self.up(c, "rs1") and self.up(c, "rs2") for c in self.checks), 30, 0.1, "every real server up")
        return self.appliance

    def server(self, check: str, rs: str) -> dict:
        assert self.appliance is not None
        return Appliance.server(self.appliance.api_status(), f"fz-{check}", rs)

    def up(self, check: str, rs: str) -> bool:
        with contextlib.suppress(Exception):
            return self.server(check, rs)["state"] in ("UP", "DRAIN")  # DRAIN: up, taking no new sessions
        return False

    def close(self) -> None:
        if self.appliance is not None:
            with contextlib.suppress(Exception):
                self.appliance.shut_down()
        for peers in self.peers.values():
            for peer in peers:
                peer.stop()


# --- the faults ---------------------------------------------------------------------------------------


def master_pid(app: Appliance) -> int:
    pid = app.haproxy_pid()
    assert pid, "no HAProxy master"
    return pid


def worker_pids(app: Appliance) -> list[int]:
    master = master_pid(app)
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and ppid(int(p)) == master]


def serving(app: Appliance) -> bool:
    with contextlib.suppress(Exception):
        return app.api("GET", "/health").status_code == 200 and bool(worker_pids(app))
    return False


def process_fault(bed: Bed, fault: str, rounds: int) -> list[dict]:
    app = bed.appliance
    assert app is not None
    out = []
    for _ in range(rounds):
        client = Client(http_once, "127.0.0.1", bed.ports["http"])
        client.start()
        time.sleep(1.0)
        before = master_pid(app)
        start = time.time()
        if fault == "worker-kill":
            for pid in worker_pids(app):
                os.kill(pid, signal.SIGKILL)
        elif fault == "master-kill":
            os.kill(before, signal.SIGKILL)
        else:  # controller-kill: HAProxy goes on alone; a new controller adopts it
            app.kill9()
            time.sleep(2.0)
            app.up(wait=False)
            app.wait_healthy(timeout=STARTUP_TIMEOUT)
        if fault != "controller-kill":
            wait_until(
                lambda old=before: app.haproxy_pid() not in (None, old) and serving(app), 30, 0.01, "HAProxy to serve again"
            )
        restored = time.time()
        time.sleep(1.0)
        result = gap(client.stop(), start, restored + 0.5)
        result.update(restored_ms=round((restored - start) * 1000, 1), adopted=master_pid(app) == before)
        out.append(result)
    return out


def freeze_fault(bed: Bed, check: str) -> dict:
    peers = bed.peers[check]
    once = FREEZE_SERVICES[check][2]
    client = Client(once, "127.0.0.1", bed.ports[check])
    client.start()
    time.sleep(1.0)
    start = time.time()
    peers[0].freeze()
    detected = None
    try:
        with contextlib.suppress(AssertionError):
            wait_until(lambda: not bed.up(check, "rs1"), 10, 0.05, "the frozen server to be marked down")
            detected = time.time()
        time.sleep(1.0)
    finally:
        peers[0].thaw()
    end = time.time()
    wait_until(lambda: bed.up(check, "rs1"), 30, 0.05, "the thawed server to be up again")
    time.sleep(0.5)
    result = gap(client.stop(), start, end)
    result["detected_ms"] = None if detected is None else round((detected - start) * 1000, 1)
    return result


def answer(response) -> dict[str, Any]:
    """A change's answer in brief: HTTP status, outcome and message (the body's start when it is not JSON)."""
    try:
        body = response.json()
    except ValueError:
        return {"status": response.status_code, "outcome": None, "message": response.text[:300]}
    return {"status": response.status_code, "outcome": body.get("outcome"), "message": str(body.get("message", ""))[:300]}


def change_under_fault(app: Appliance, bed: Bed) -> dict[str, Any]:
    """An apply that needs a reload and a runtime operation, while the state directory cannot be written."""
    apply = app.api("POST", "/apply", json={"yaml": bed.config(retries=2), "author": "faults"}, timeout=60)
    drain = app.api(
        "POST", "/virtual-services/fz-http/real-servers/rs1/state", json={"state": "drain", "author": "faults"}, timeout=60
    )
    return {"apply": answer(apply), "drain": answer(drain)}


def storage_fault(workdir: Path, fault: str) -> dict:
    mount = workdir / "statefs"
    mount.mkdir(mode=0o750, parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=0750", "tmpfs", str(mount)], check=True)
    bed = Bed(workdir / "app", ("http",), state_dir=mount / "state")
    try:
        app = bed.start()
        config_before = app.paths.haproxy_config.read_bytes()
        listing_before = sorted(p.name for p in app.state_dir.rglob("*"))
        client = Client(http_once, "127.0.0.1", bed.ports["http"])
        client.start()
        time.sleep(1.0)
        start = time.time()
        fill = mount / "fill"
        if fault == "disk-full":
            subprocess.run(["dd", "if=/dev/zero", f"of={fill}", "bs=1M"], capture_output=True)
        else:  # a read-only bind mount on top: files open for writing (SQLite, logs) refuse a plain remount
            subprocess.run(["mount", "--bind", str(mount), str(mount)], check=True)
            subprocess.run(["mount", "-o", "remount,bind,ro", str(mount)], check=True)
        try:
            answers = change_under_fault(app, bed)
            time.sleep(1.0)
            healthy = serving(app)
        finally:
            if fault == "disk-full":
                fill.unlink()
            else:
                subprocess.run(["umount", str(mount)], check=True)
        end = time.time()
        unchanged = app.paths.haproxy_config.read_bytes() == config_before
        # SQLite's -wal and -shm files come and go with every connection: not left by the change
        left = sorted(
            n for n in set(p.name for p in app.state_dir.rglob("*")) - set(listing_before) if not n.endswith(("-wal", "-shm"))
        )
        errors = [line for line in app.read_log().splitlines() if "Error" in line or "ERROR" in line][-10:]
        after = answer(app.api("POST", "/apply", json={"yaml": bed.config(retries=2), "author": "faults"}, timeout=60))
        time.sleep(0.5)
        result = gap(client.stop(), start, end)
        result.update(answers=answers, controller_errors=errors, still_serving=healthy, haproxy_cfg_unchanged=unchanged, new_files=left,
                      apply_after_recovery=after["outcome"])  # fmt: skip
        return result
    finally:
        bed.close()
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def clock_shifter(workdir: Path) -> tuple[dict[str, str], Callable[[int], None]]:
    """The environment that preloads bench/lib/clockshift.c (compiled here), and a function that moves the
    wall clock of the processes started with it by N seconds (their monotonic clock stays)."""
    if shutil.which("gcc") is None:
        raise SystemExit("clock-jump compiles bench/lib/clockshift.c: install gcc (apt-get install -y gcc)")
    library, shift = workdir / "clockshift.so", workdir / "clockshift"
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(library), str(HERE / "lib" / "clockshift.c"), "-ldl"], check=True)
    shift.write_bytes(struct.pack("<q", 0))

    def jump(seconds: int) -> None:
        with open(shift, "r+b") as f:  # in place: the processes read it through a shared mapping
            f.write(struct.pack("<q", seconds))

    return {"LD_PRELOAD": str(library), "CLOCKSHIFT_FILE": str(shift)}, jump


def clock_fault(workdir: Path) -> dict:
    env, jump = clock_shifter(workdir)
    bed = Bed(workdir / "app", ("http", "hl7"), preload=env)
    try:
        app = bed.start()
        client = Client(http_once, "127.0.0.1", bed.ports["http"])
        client.start()
        time.sleep(1.0)
        start = time.time()
        steps = {}
        for label, seconds in (("2 h ahead", 7200), ("back", 0), ("2 h behind", -7200), ("back again", 0)):
            jump(seconds)
            time.sleep(3.0)
            drain = app.api("POST", "/virtual-services/fz-http/real-servers/rs1/state",
                            json={"state": "drain" if seconds else "online", "author": "faults"}, timeout=30)  # fmt: skip
            steps[label] = {
                "healthy": serving(app),
                "checks_up": bed.up("http", "rs2") and bed.up("hl7", "rs1"),
                "runtime_op": answer(drain)["outcome"],
            }
        end = time.time()
        result = gap(client.stop(), start, end)
        result["steps"] = steps
        result["controller_errors"] = [line for line in app.read_log().splitlines() if "ERROR" in line or "Traceback" in line][
            -10:
        ]
        return result
    finally:
        bed.close()


def keepalived_fault(rounds: int) -> list[dict]:
    sys.path.insert(0, str(REPO / "tests" / "netns"))
    from ha_support import build_pair, gaps

    pair = build_pair(tag="faults")
    out = []
    try:
        stop_file = pair.workdir / "stop"
        loop = pair.loop(stop_file, 60 + rounds * 30)
        windows = []
        try:
            time.sleep(1.0)
            for _ in range(rounds):
                master = pair.wait_one_master()
                node = pair.nodes[master]
                pids = [p for p in node.pids() if "keepalived" in Path(f"/proc/{p}/comm").read_text()]
                start = time.time()
                for pid in pids:
                    os.kill(pid, signal.SIGKILL)
                wait_until(lambda node=node, pids=pids: any(
                    p not in pids and "keepalived" in Path(f"/proc/{p}/comm").read_text() for p in node.pids()
                ), 30, 0.05, "keepalived to run again")  # fmt: skip
                time.sleep(2.0)
                windows.append((start, time.time()))
                out.append({"killed_on": master, "master_after": pair.wait_one_master()})
        finally:
            stop_file.touch()
            records_text, _ = loop.communicate(timeout=120)
        records = json.loads(records_text)
        found, outside = gaps(records, windows)
        for result, g, (start, end) in zip(out, found, windows, strict=False):
            result.update(gap_ms=round(g * 1000, 1),
                          failed=sum(1 for r in records if not r[2] and start <= r[1] and r[0] <= end))  # fmt: skip
        if out:
            out[0]["failed_outside"] = len(outside)
    finally:
        pair.close()
    return out


# --- the run ------------------------------------------------------------------------------------------


def run(faults: tuple[str, ...], rounds: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    work = Path(tempfile.mkdtemp(prefix="pacslb-faults-", dir="/tmp"))
    try:
        process = [f for f in faults if f in PROCESS_FAULTS]
        freezes = tuple(f.removeprefix("freeze-") for f in faults if f.startswith("freeze-"))
        if process or freezes:
            bed = Bed(work / "main", tuple(dict.fromkeys(("http", *freezes))))
            try:
                bed.start()
                for fault in process:
                    print(f"{fault} ...", file=sys.stderr, flush=True)
                    results[fault] = process_fault(bed, fault, rounds)
                for check in freezes:
                    print(f"freeze-{check} ...", file=sys.stderr, flush=True)
                    results[f"freeze-{check}"] = [freeze_fault(bed, check)]
            finally:
                bed.close()
        for fault in ("disk-full", "read-only"):
            if fault in faults:
                print(f"{fault} ...", file=sys.stderr, flush=True)
                results[fault] = [storage_fault(work / fault, fault)]
        if "clock-jump" in faults:
            print("clock-jump ...", file=sys.stderr, flush=True)
            (work / "clock").mkdir()
            results["clock-jump"] = [clock_fault(work / "clock")]
        if "keepalived-kill" in faults:
            print("keepalived-kill ...", file=sys.stderr, flush=True)
            results["keepalived-kill"] = keepalived_fault(rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


def _gaps(rounds: list[dict]) -> str:
    values = sorted(r["gap_ms"] for r in rounds)
    return " / ".join(f"{v:.0f}" for v in values)


def section(doc: dict) -> str:
    res = doc["results"]
    lines = [
        f"Run {doc['started']} on {doc['machine']['nproc']} CPUs; pacslb {doc['git']}. A client sends one request after "
        f"another, each on a new connection ({CONNECT_TIMEOUT * 1000:.0f} ms connect timeout, {ANSWER_TIMEOUT:g} s for "
        "the answer).",
        "",
        "| fault | gap per round (ms) | failed requests | what else |",
        "|---|---|---|---|",
    ]
    for fault, rounds in res.items():
        failed = sum(r.get("failed", 0) for r in rounds)
        sent = sum(r.get("sent", 0) for r in rounds)
        extra = []
        if fault in PROCESS_FAULTS:
            extra.append("serving again after " + " / ".join(f"{r['restored_ms']:.0f}" for r in rounds) + " ms")
        if fault.startswith("freeze-"):
            detected = rounds[0].get("detected_ms")
            extra.append("never marked down" if detected is None else f"marked down after {detected:.0f} ms")
        if fault in ("disk-full", "read-only"):
            r = rounds[0]
            extra.append(f"apply: {r['answers']['apply']['outcome']} ({r['answers']['apply']['message'][:90]}); "
                         f"drain: {r['answers']['drain']['outcome']}; haproxy.cfg unchanged: {r['haproxy_cfg_unchanged']}; "
                         f"files left: {len(r['new_files'])}; apply after: {r['apply_after_recovery']}")  # fmt: skip
        if fault == "clock-jump":
            extra.append("; ".join(f"{k}: healthy {v['healthy']}, checks {v['checks_up']}, drain {v['runtime_op']}"
                                   for k, v in rounds[0]["steps"].items()))  # fmt: skip
        if fault == "keepalived-kill":
            extra.append("master after: " + ", ".join(f"{r['killed_on']}->{r['master_after']}" for r in rounds))
        lines.append(f"| {fault} | {_gaps(rounds)} | {failed} of {sent} | {'; '.join(extra)} |")
    return "\n".join(lines) + "\n\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one worker kill and the full disk (the make-test smoke)")
    parser.add_argument("--faults", default=None, help="comma-separated, of: " + ", ".join(FAULTS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--results-dir", type=Path, default=HERE / "results")
    parser.add_argument("--readme", type=Path, default=HERE / "README.md")
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/faults.py needs root (tmpfs mounts, namespaces, other users' signals)", file=sys.stderr)
        return 2
    faults = QUICK_FAULTS if args.quick else tuple(args.faults.split(",")) if args.faults else FAULTS
    unknown = [f for f in faults if f not in FAULTS]
    if unknown:
        parser.error(f"unknown fault(s) {', '.join(unknown)}: choose from {', '.join(FAULTS)}")
    started = utc_now()
    results = run(faults, 1 if args.quick else args.rounds)
    commit, dirty = git_state()
    doc = {"started": started.isoformat(timespec="seconds"), "quick": args.quick,
           "git": f"{commit}{' (uncommitted changes)' if dirty else ''}", "machine": machine_info(),
           "versions": versions(("haproxy",)), "results": results}  # fmt: skip
    path = write_results(args.results_dir, f"{stamp(started)}-faults.json", doc)
    text = section(doc)
    print(text)
    print(f"results: {path}", file=sys.stderr)
    if not args.no_readme and not args.quick:
        replace_section(args.readme, "faults", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
