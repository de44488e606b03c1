#!/usr/bin/env python3
"""Runtime control, revisions and reloads: how long a change takes to show, and what the controller costs.

    .venv/bin/python bench/runtime_ops.py            # full run: a few minutes on 2 cores
    .venv/bin/python bench/runtime_ops.py --quick    # smoke: fewer operations, 100 x 10 instead of 1,000 x 10

For two configurations, the True PACS template (35 services) and a generated one (1,000 Layer 7
services with 10 real servers each), it runs the real appliance (`pacslb up`, real HAProxy) and measures:

  runtime operations   drain, online, halt, weight through the controller API (what `pacslb server`
                       sends): the time from sending the request to the new state visible on HAProxy's
                       stats socket (`show servers state`, polled), and to the API's answer (which comes
                       after the runtime operation and the recorded revision; haproxy.cfg follows in the
                       background, engines/haproxy/deferred.py); the worker PID must stay the same
  the CLI              the same through `pacslb server ...` (a new Python process each time)
  runtime applies      an apply of a file that adds (then removes) a real server: runtime operations
  reload applies       an apply of a file that needs a reload (settings.retries toggled): render,
                       `haproxy -c`, reload (confirmed with show proc), as the controller times them
                       (both sent as `pacslb apply` sends them: the file parsed by the client, as JSON
                       and as text; the client's parsing is included in "total")
  memory               the controller's resident memory (VmRSS, and its peak VmHWM) after start and after
                       all of the above; HAProxy's (master and workers) for reference

Writes bench/results/<timestamp>-runtime.json and the section of bench/README.md between
``<!-- results:runtime start -->`` and ``<!-- results:runtime end -->`` (nothing else in that file).
Everything listens on loopback (a 127.X.Y.Z address of its own); real servers point at loopback
addresses where nothing listens (their checks fail: states and weights change all the same); every
process is stopped by its PID in a finally block.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from pacslb import pki  # noqa: E402
from pacslb.engines.haproxy.runtime import AdminFlag, parse_servers_state, send_command  # noqa: E402
from pacslb.model.load import parse_yaml  # noqa: E402
from pacslb.paths import StatePaths  # noqa: E402
from pacslb.templates.true_pacs import PLACEHOLDER_CERTIFICATE, SERVICES, TruePacsParams, render_true_pacs  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/lib, the benchmarks' shared helpers
from lib.machine import haproxy_version  # noqa: E402
from lib.procfs import ppid, rss_kb  # noqa: E402
from lib.procs import die_with_parent  # noqa: E402
from lib.report import markers, replace_section, write_results  # noqa: E402
from lib.stats import ms_summary as summary  # noqa: E402
from lib.stats import percentile  # noqa: E402,F401 - tests/bench/test_runtime_bench.py reads it from this script

MARK_START, MARK_END = markers("runtime")


def update_readme(path: Path, section: str) -> None:
    """This benchmark's section of bench/README.md, between its markers; the rest of the file is kept."""
    replace_section(path, "runtime", section)


RSS_GOAL_MB = 150
PYTHON = sys.executable


# --- configurations ------------------------------------------------------------------------------


def free_low_port() -> int:
    """A free TCP port below 1024 on loopback for settings.health.agent_port: the default (334) may be held by
    another appliance running on this machine."""
    for port in random.sample(range(600, 1024), 424):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 600 and 1023 on 127.0.0.1")


def true_pacs_config(workdir: Path, vip: str, server_net: tuple[int, int]) -> Path:
    """The True PACS template on `vip` (ports + 20000), real servers on 127.A.B.x where nothing listens."""
    real_servers = {}
    served = [s for s in SERVICES if s.server_port is not None]
    for i, spec in enumerate(served):
        real_servers[spec.name] = [(f"127.{server_net[0]}.{server_net[1] + i}.{r}", spec.server_port) for r in (1, 2)]
    text = render_true_pacs(TruePacsParams(vip_address=vip, port_offset=20000, real_servers=real_servers))
    cert = workdir / PLACEHOLDER_CERTIFICATE
    cert.parent.mkdir(parents=True, exist_ok=True)
    cert.write_bytes(pki.self_signed("pacslb bench", [vip]).bundle())
    data = yaml.safe_load(text)
    data.setdefault("settings", {})["max_connections"] = 4000
    data["settings"].setdefault("health", {})["agent_port"] = free_low_port()
    path = workdir / "true-pacs.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def generated_config(workdir: Path, vip: str, server_net: tuple[int, int], services: int, servers: int) -> Path:
    """`services` Layer 7 HTTP services on vip:30000+i, each with `servers` real servers; no health checks."""
    data: dict[str, Any] = {"version": 1, "settings": {"max_connections": 4000, "health": {"agent_port": free_low_port()}},
                            "virtual_services": []}  # fmt: skip
    for i in range(services):
        data["virtual_services"].append({
            "name": f"svc{i:04d}",
            "mode": "layer7-http",
            "listen": [{"address": vip, "port": 30000 + i}],
            "health_check": {"type": "none"},
            "real_servers": [
                {"name": f"rs{j}", "address": f"127.{server_net[0]}.{server_net[1] + i // 250}.{(i % 250) + 1}",
                 "port": 10000 + j}
                for j in range(servers)
            ],
        })  # fmt: skip
    path = workdir / f"generated-{services}x{servers}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# --- the appliance -------------------------------------------------------------------------------


class Appliance:
    def __init__(self, config: Path, state_dir: Path, log: Path) -> None:
        self.config, self.paths, self.log = config, StatePaths(state_dir), log
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 300.0) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [PYTHON, "-m", "pacslb", "up", "-c", str(self.config), "--state-dir", str(self.paths.root)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent,
                cwd=REPO,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pacslb up exited with {self.process.returncode}; see {self.log}")
            try:
                if self.api("GET", "/health", timeout=5).status_code == 200:
                    return
            except (httpx.HTTPError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the appliance did not get healthy within {timeout:g}s; see {self.log}")

    def api(self, method: str, path: str, body: dict | None = None, timeout: float = 600.0) -> httpx.Response:
        transport = httpx.HTTPTransport(uds=str(self.paths.controller_socket))
        with httpx.Client(transport=transport, base_url="http://pacslb", timeout=timeout) as client:
            return client.request(method, f"/api/v1{path}", json=body)

    def admin(self, command: str) -> str:
        return send_command(self.paths.haproxy_admin_socket, command, timeout=10)

    def worker_pid(self) -> int:
        info = self.admin("show info")
        return int(next(line.split(":")[1] for line in info.splitlines() if line.startswith("Pid:")))

    def haproxy_rss_kb(self) -> int:
        try:
            master = int(self.paths.haproxy_pid.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return 0
        pids = [master] + [int(p) for p in os.listdir("/proc") if p.isdigit() and ppid(int(p)) == master]
        return sum(rss_kb(p).get("VmRSS", 0) for p in pids)

    def stop(self) -> None:
        if self.process is None:
            return
        subprocess.run([PYTHON, "-m", "pacslb", "stop", "--state-dir", str(self.paths.root)], cwd=REPO,
                       capture_output=True, timeout=120)  # fmt: skip
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# --- runtime operations --------------------------------------------------------------------------

KINDS = ["drain", "online", "halt", "online", "weight:50", "weight:100"]


def _visible(app: Appliance, backend: str, server: str, kind: str) -> bool:
    rows = parse_servers_state(app.admin(f"show servers state {backend}"))
    row = next((r for r in rows if r.server == server), None)
    if row is None:
        return False
    flags = row.admin_flags
    if kind == "drain":
        return bool(flags & AdminFlag.FORCED_DRAIN) and not flags & AdminFlag.FORCED_MAINT
    if kind == "halt":
        return bool(flags & AdminFlag.FORCED_MAINT)
    if kind == "online":
        return not flags & (AdminFlag.FORCED_MAINT | AdminFlag.FORCED_DRAIN)
    return row.user_weight == int(kind.split(":")[1])


def _request(kind: str) -> tuple[str, dict]:
    if kind.startswith("weight"):
        return "weight", {"weight": int(kind.split(":")[1]), "author": "bench", "message": "bench"}
    return "state", {"state": kind, "author": "bench", "message": "bench"}


def api_send(app: Appliance, path: str, body: dict) -> socket.socket:
    """Write one request to the controller API and return the socket, without waiting for the answer
    (so that one thread can send, watch the stats socket, then read the answer: no GIL contention)."""
    payload = json.dumps(body).encode()
    head = (
        f"POST /api/v1{path} HTTP/1.1\r\nHost: pacslb\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    ).encode()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(600)
    sock.connect(str(app.paths.controller_socket))
    sock.sendall(head + payload)
    return sock


def api_answer(sock: socket.socket) -> dict:
    chunks = []
    with sock:
        while data := sock.recv(65536):
            chunks.append(data)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    if b"chunked" in head.lower():
        body = _unchunk(body)
    return json.loads(body)


def _unchunk(body: bytes) -> bytes:
    out, rest = b"", body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, rest = out + rest[:size], rest[size + 2 :]
    return out


def timed_operation(app: Appliance, backend: str, server: str, kind: str, start: Callable[[], Any],
                    finish: Callable[[Any], Any]) -> dict:  # fmt: skip
    """start() sends the command; the stats socket is polled until the new state shows; finish() waits for
    the command's answer. One thread, so the measurement does not compete with itself for the GIL."""
    started = time.monotonic()
    handle = start()
    visible = None
    deadline = started + 120
    while time.monotonic() < deadline:
        if _visible(app, backend, server, kind):
            visible = time.monotonic()
            break
        time.sleep(0.0002)
    answer = finish(handle)
    returned = time.monotonic()
    if visible is None:
        raise RuntimeError(f"{kind} {backend}/{server} did not show within 120 s: {answer}")
    return {"kind": kind, "target": f"{backend}/{server}", "visible_s": visible - started,
            "returned_s": returned - started, "answer": answer}  # fmt: skip


def runtime_operations(app: Appliance, targets: list[tuple[str, str]], count: int) -> dict:
    records = []
    pid = app.worker_pid()
    for i in range(count):
        backend, server = targets[(i // len(KINDS)) % len(targets)]
        kind = KINDS[i % len(KINDS)]
        what, body = _request(kind)

        def finish(sock, kind=kind, backend=backend, server=server):
            data = api_answer(sock)
            if data.get("outcome") != "applied":
                raise RuntimeError(f"{kind} {backend}/{server}: {data}")
            return data.get("timings")

        start = lambda backend=backend, server=server, what=what, body=body: api_send(  # noqa: E731
            app, f"/virtual-services/{backend}/real-servers/{server}/{what}", body
        )
        records.append(timed_operation(app, backend, server, kind, start, finish))
    same_worker = app.worker_pid() == pid
    return {
        "count": count,
        "visible": summary([r["visible_s"] for r in records]),
        "returned": summary([r["returned_s"] for r in records]),
        "by_kind": {
            k: summary([r["visible_s"] for r in records if r["kind"].split(":")[0] == k])
            for k in ("drain", "online", "halt", "weight")
        },  # fmt: skip
        "controller_steps_ms": {
            step: round(statistics.median(r["answer"].get(step, 0) for r in records) * 1000, 3)
            for step in ("runtime", "record", "notify", "render", "check", "total")
        },
        "worker_pid_unchanged": same_worker,
    }


def cli_operations(app: Appliance, targets: list[tuple[str, str]], count: int) -> dict:
    records = []
    for i in range(count):
        backend, server = targets[(i // 2) % len(targets)]  # drain, then online again
        kind = "drain" if i % 2 == 0 else "online"

        def start(backend=backend, server=server, kind=kind):
            return subprocess.Popen(
                [PYTHON, "-m", "pacslb", "server", kind, backend, server, "--state-dir", str(app.paths.root)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
            )  # fmt: skip

        def finish(process):
            out, _ = process.communicate(timeout=600)
            if process.returncode != 0:
                raise RuntimeError(out)

        records.append(timed_operation(app, backend, server, kind, start, finish))
    return {"count": count, "visible": summary([r["visible_s"] for r in records]),
            "returned": summary([r["returned_s"] for r in records])}  # fmt: skip


# --- applies -------------------------------------------------------------------------------------


def apply_timings(app: Appliance, texts: list[str], base_dir: Path) -> dict:
    results = []
    for text in texts:
        started = time.monotonic()
        data, _ = parse_yaml(text)  # as `pacslb apply` does: the file parsed by the CLI, sent as JSON and as text
        body = {"yaml": text, "config": data, "base_dir": str(base_dir), "author": "bench", "message": "bench"}
        answer = app.api("POST", "/apply", body)
        elapsed = time.monotonic() - started
        data = answer.json()
        if data.get("outcome") != "applied":
            raise RuntimeError(f"apply failed: {json.dumps(data)[:2000]}")
        results.append({"api_s": elapsed, "method": data["engine"].get("method"), **data["timings"]})
    steps = {"render": "render", "check": "check", "engine": "engine (runtime operations or reload)",
             "validate": "validate", "plan": "plan", "record": "record", "total": "total"}  # fmt: skip
    return {
        "count": len(results),
        "methods": sorted({r["method"] for r in results}),
        "api": summary([r["api_s"] for r in results]),
        **{name: summary([r.get(name, 0.0) for r in results]) for name in steps},
    }


def reload_texts(config: Path, count: int) -> list[str]:
    data = yaml.safe_load(config.read_text())
    texts = []
    for i in range(count):
        data.setdefault("settings", {})["retries"] = 2 if i % 2 == 0 else 3
        texts.append(yaml.safe_dump(data, sort_keys=False))
    return texts


def add_remove_texts(config: Path, count: int, service: str, address: str, port: int) -> list[str]:
    data = yaml.safe_load(config.read_text())
    vs = next(v for v in data["virtual_services"] if v["name"] == service)
    base = list(vs["real_servers"])
    texts = []
    for i in range(count):
        vs["real_servers"] = base + ([{"name": "bench-extra", "address": address, "port": port}] if i % 2 == 0 else [])
        texts.append(yaml.safe_dump(data, sort_keys=False))
    return texts


def targets_of(config: Path) -> list[tuple[str, str]]:
    data = yaml.safe_load(config.read_text())
    return [
        (vs["name"], rs["name"])
        for vs in data["virtual_services"]
        if not vs["mode"].startswith("layer4")
        for rs in vs.get("real_servers", [])
    ]


# --- one configuration ---------------------------------------------------------------------------


def measure(name: str, config: Path, workdir: Path, args: argparse.Namespace, extra: tuple[str, str, int]) -> dict:
    state = Path(tempfile.mkdtemp(prefix="pacslb-bench-", dir="/tmp")) / "s"
    app = Appliance(config, state, workdir / f"{name}-up.log")
    data = yaml.safe_load(config.read_text())
    result: dict[str, Any] = {
        "config": config.name,
        "services": len(data["virtual_services"]),
        "real_servers": sum(len(v.get("real_servers", [])) for v in data["virtual_services"]),
    }
    try:
        started = time.monotonic()
        app.start()
        result["startup_s"] = round(time.monotonic() - started, 3)
        assert app.process is not None
        pid = app.process.pid
        result["controller_memory_kb"] = {"after_start": rss_kb(pid)}
        result["haproxy_memory_kb"] = {"after_start": app.haproxy_rss_kb()}
        targets = targets_of(config)
        random.Random(4).shuffle(targets)
        print(f"[{name}] runtime operations x{args.ops}", flush=True)
        result["runtime_operations"] = runtime_operations(app, targets, args.ops)
        print(f"[{name}] CLI operations x{args.cli_ops}", flush=True)
        result["cli_operations"] = cli_operations(app, targets, args.cli_ops)
        service, address, port = extra
        print(f"[{name}] runtime applies x{args.runtime_applies}", flush=True)
        result["runtime_applies"] = apply_timings(
            app, add_remove_texts(config, args.runtime_applies, service, address, port), config.parent
        )
        print(f"[{name}] reload applies x{args.reload_applies}", flush=True)
        result["reload_applies"] = apply_timings(app, reload_texts(config, args.reload_applies), config.parent)
        result["controller_memory_kb"]["after_all"] = rss_kb(pid)
        result["haproxy_memory_kb"]["after_all"] = app.haproxy_rss_kb()
        revisions = app.api("GET", "/revisions?limit=10000").json()["revisions"]
        result["revisions_recorded"] = len(revisions)
    finally:
        app.stop()
        shutil.rmtree(state.parent, ignore_errors=True)
    return result


# --- report --------------------------------------------------------------------------------------


def _mb(kb: int | None) -> str:
    return "-" if not kb else f"{kb / 1024:.0f}"


def _ms(s: dict, key: str = "median_ms") -> str:
    value = s.get(key)
    if value is None:
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def section(doc: dict) -> str:
    """The README's results section: a few tables from the JSON."""
    runs = doc["runs"]
    names = list(runs)
    head = "| | " + " | ".join(f"{runs[n]['services']} services, {runs[n]['real_servers']} real servers" for n in names) + " |"
    rule = "|---|" + "---|" * len(names)
    lines = [
        f"Run {doc['timestamp']} on {doc['machine']['cpus']} CPUs, HAProxy {doc['machine']['haproxy']}, "
        f"Python {doc['machine']['python']}{' (--quick)' if doc['quick'] else ''}; load average (1 min) "
        f"{doc['machine'].get('load_average_at_start', ['?'])[0]} at the start, "
        f"{doc['machine'].get('load_average_at_end', ['?'])[0]} at the end (other work on the machine). "
        f"Raw numbers: `bench/results/{doc['file']}`.",
        "",
        "Runtime operations (drain, online, halt, weight through the controller API), milliseconds:",
        "",
        head,
        rule,
    ]

    def row(label: str, get: Callable[[dict], str]) -> None:
        lines.append(f"| {label} | " + " | ".join(get(runs[n]) for n in names) + " |")

    row("operations", lambda r: str(r["runtime_operations"]["count"]))
    row("new state visible on the stats socket: median", lambda r: _ms(r["runtime_operations"]["visible"]))
    row("visible: p99", lambda r: _ms(r["runtime_operations"]["visible"], "p99_ms"))
    row("API answer (runtime operation done, revision recorded): median",
        lambda r: _ms(r["runtime_operations"]["returned"]))  # fmt: skip
    row("API answer: p99", lambda r: _ms(r["runtime_operations"]["returned"], "p99_ms"))
    row("worker PID unchanged", lambda r: "yes" if r["runtime_operations"]["worker_pid_unchanged"] else "**no**")
    row("`pacslb server ...` (a new process): visible, median",
        lambda r: _ms(r["cli_operations"]["visible"]) + f" (n={r['cli_operations']['count']})")  # fmt: skip
    row("`pacslb server ...`: command done, median", lambda r: _ms(r["cli_operations"]["returned"]))
    lines += ["", "Applies of a whole file (`pacslb apply`), milliseconds, median (p99):", "", head, rule]

    def both(s: dict) -> str:
        return f"{_ms(s)} ({_ms(s, 'p99_ms')})" if s.get("count") else "-"

    row("runtime applies (a real server added / removed): count", lambda r: str(r["runtime_applies"]["count"]))
    row("runtime apply: render", lambda r: both(r["runtime_applies"]["render"]))
    row("runtime apply: haproxy -c", lambda r: both(r["runtime_applies"]["check"]))
    row("runtime apply: runtime operations", lambda r: both(r["runtime_applies"]["engine"]))
    row("runtime apply: total (API)", lambda r: both(r["runtime_applies"]["api"]))
    row("reload applies (settings.retries toggled): count", lambda r: str(r["reload_applies"]["count"]))
    row("reload apply: render", lambda r: both(r["reload_applies"]["render"]))
    row("reload apply: haproxy -c", lambda r: both(r["reload_applies"]["check"]))
    row("reload apply: reload, confirmed", lambda r: both(r["reload_applies"]["engine"]))
    row("reload apply: validate + plan", lambda r: f"{_ms(r['reload_applies']['validate'])} + {_ms(r['reload_applies']['plan'])}")
    row("reload apply: total (API)", lambda r: both(r["reload_applies"]["api"]))
    lines += ["", f"Memory, MB (goal: controller under {RSS_GOAL_MB} MB):", "", head, rule]
    row("controller RSS after start", lambda r: _mb(r["controller_memory_kb"]["after_start"].get("VmRSS")))
    row("controller RSS after everything above", lambda r: _mb(r["controller_memory_kb"]["after_all"].get("VmRSS")))
    row("controller peak RSS (VmHWM: during the applies)", lambda r: _mb(r["controller_memory_kb"]["after_all"].get("VmHWM")))

    def goal(r: dict) -> str:
        memory = r["controller_memory_kb"]["after_all"]
        ok = [memory.get(k, 0) / 1024 < RSS_GOAL_MB for k in ("VmRSS", "VmHWM")]
        return f"{'yes' if ok[0] else '**no**'} / {'yes' if ok[1] else '**no**'}"

    row("under the goal: at rest / at the peak", goal)
    row("HAProxy RSS, master + workers, after everything", lambda r: _mb(r["haproxy_memory_kb"]["after_all"]))
    row("startup of the appliance (s)", lambda r: f"{r['startup_s']:.1f}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer operations; 100 x 10 instead of 1,000 x 10")
    parser.add_argument("--ops", type=int, default=None, help="runtime operations per configuration (200)")
    parser.add_argument("--cli-ops", type=int, default=None, help="operations through the CLI (20)")
    parser.add_argument("--runtime-applies", type=int, default=None, help="applies adding/removing a real server (20)")
    parser.add_argument("--reload-applies", type=int, default=None, help="applies that reload (10)")
    parser.add_argument("--services", type=int, default=None, help="services of the generated configuration (1000)")
    parser.add_argument("--servers", type=int, default=10, help="real servers per generated service (10)")
    parser.add_argument("--only", choices=["true-pacs", "generated"], help="measure one configuration only")
    parser.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--readme", type=Path, default=REPO / "bench" / "README.md")
    parser.add_argument("--no-readme", action="store_true", help="write the JSON only")
    args = parser.parse_args(argv)
    quick = args.quick
    args.ops = args.ops or (24 if quick else 200)
    args.cli_ops = args.cli_ops or (4 if quick else 20)
    args.runtime_applies = args.runtime_applies or (2 if quick else 20)
    args.reload_applies = args.reload_applies or (2 if quick else 10)
    args.services = args.services or (100 if quick else 1000)

    load_at_start = [round(x, 2) for x in os.getloadavg()]
    rng = random.Random()
    vip = f"127.{rng.randint(100, 199)}.{rng.randint(1, 254)}.10"
    server_net = (rng.randint(200, 250), 10)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="pacslb-bench-runtime-") as tmp:
        workdir = Path(tmp)
        if args.only in (None, "true-pacs"):
            config = true_pacs_config(workdir, vip, server_net)
            data = yaml.safe_load(config.read_text())
            service = next(v["name"] for v in data["virtual_services"]
                           if v["mode"] == "backend-only" and v.get("persistence", {}).get("type") != "http-cookie")  # fmt: skip
            runs["true-pacs"] = measure("true-pacs", config, workdir, args, (service, f"127.{server_net[0]}.9.1", 443))
        if args.only in (None, "generated"):
            config = generated_config(workdir, vip, server_net, args.services, args.servers)
            runs[f"generated-{args.services}x{args.servers}"] = measure(
                "generated", config, workdir, args, ("svc0000", f"127.{server_net[0]}.9.2", 10999)
            )
    doc = {
        "timestamp": stamp,
        "file": f"{stamp}-runtime.json",
        "quick": quick,
        "machine": {
            "cpus": os.cpu_count(),
            "haproxy": haproxy_version(),
            "python": platform.python_version(),
            "kernel": platform.release(),
            "load_average_at_start": load_at_start,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },  # fmt: skip
        "parameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "runs": runs,
    }
    out = write_results(args.results_dir, doc["file"], doc)
    print(f"results: {out}")
    text = section(doc)
    print(text)
    if not args.no_readme and (not quick or "--readme" in (argv or sys.argv)):
        update_readme(args.readme, text)
        print(f"updated {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
