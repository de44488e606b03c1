#!/usr/bin/env python3
"""Layer 7 benchmark of the appliance: wrk against four ways of serving the same route.

    .venv/bin/python bench/run.py            # full run (10 s per measurement, 3 rounds)
    .venv/bin/python bench/run.py --quick    # CI smoke (3 s per measurement, 1 round)

Cases (every one serves the same two simulated real servers, see bench/README.md):
  a  direct            wrk -> one demo real server (no proxy)
  b  haproxy-rendered  wrk -> HAProxy running the configuration pacslb renders -> 2 real servers
  c  haproxy-minimal   wrk -> HAProxy with bench/minimal-haproxy.cfg.tmpl -> 2 real servers
  d  nginx             wrk -> nginx with bench/minimal-nginx.conf.tmpl -> 2 real servers

Workloads: small responses (GET /) and 10 MiB responses (GET /bytes/10485760), each with
keep-alive and with a new connection per request (``Connection: close``).

Measurements are interleaved: for each workload, every round runs every case once, in an order
rotated from round to round, and the summary takes the median of the rounds. Every process shares
the machine's cores, so only ratios measured in one run mean something.

Writes bench/results/<timestamp>-l7.json (raw numbers, parameters, versions, the three proxy
configurations) and regenerates the section of bench/README.md between
``<!-- results:l7 start -->`` and ``<!-- results:l7 end -->``.

Everything listens on loopback; every child is stopped by its PID in a finally block, and asks
the kernel to end it if this process dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import string
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
try:
    import pacslb  # noqa: F401
except ImportError:  # run from a checkout without an installed package
    sys.path.insert(0, str(REPO / "src"))

from pacslb import __version__ as PACSLB_VERSION  # noqa: E402
from pacslb.demo import DemoProcess, demo_spec_for  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ is not a package
from readme_section import fmt, haproxy_nbthread, replace_section, split_choices, stat_fields  # noqa: E402


LUA_REPORT = HERE / "wrk-report.lua"
MINIMAL_HAPROXY_TEMPLATE = HERE / "minimal-haproxy.cfg.tmpl"
MINIMAL_NGINX_TEMPLATE = HERE / "minimal-nginx.conf.tmpl"
README = HERE / "README.md"
RESULTS_DIR = HERE / "results"
MARK_START = "<!-- results:l7 start -->"
MARK_END = "<!-- results:l7 end -->"

def update_readme(path: Path, section: str) -> None:
    """This benchmark's section of bench/README.md, between its markers; the rest of the file is kept."""
    replace_section(path, "l7", section)


# 127.232.10.1 and 127.232.10.2: the two demo real servers (away from the tests' addresses).
DEMO_SECOND_OCTET = 232
DEMO_SERVICE = "bench_http"
VIP_ADDRESS = "127.0.0.1"
BIG_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class Workload:
    name: str
    path: str
    connections: int
    close: bool  # a new connection per request (wrk -H 'Connection: close')
    description: str


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("small-keepalive", "/", 50, False, "GET / (about 250-byte JSON), keep-alive"),
        Workload("small-close", "/", 50, True, "GET / (about 250-byte JSON), Connection: close"),
        Workload("10mb-keepalive", f"/bytes/{BIG_BYTES}", 8, False, "GET /bytes/10485760, keep-alive"),
        Workload("10mb-close", f"/bytes/{BIG_BYTES}", 8, True, "GET /bytes/10485760, Connection: close"),
    )
}

CASES: dict[str, tuple[str, str]] = {
    "a": ("direct", "wrk to one demo real server, no proxy"),
    "b": ("haproxy-rendered", "HAProxy with the configuration pacslb renders (src/pacslb/engines/haproxy/render.py)"),
    "c": ("haproxy-minimal", "HAProxy with the hand-written bench/minimal-haproxy.cfg.tmpl"),
    "d": ("nginx", "nginx with bench/minimal-nginx.conf.tmpl (upstream keepalive)"),
}

RATIO_TARGET = 0.95  # the issue: b/c >= 0.95


# --- processes ---------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """preexec_fn: the kernel sends SIGTERM to the child if this process dies (PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class Child:
    """One engine process in the foreground, its output in a log file; stopped by PID."""

    def __init__(self, name: str, cmd: list[str], log: Path):
        self.name = name
        self.cmd = cmd
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Child":
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pids(self) -> list[int]:
        """This process and its descendants (nginx workers), for CPU accounting."""
        return [self.pid, *descendants(self.pid)] if self.alive() else []

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def descendants(pid: int) -> list[int]:
    parents = {pid}
    found: list[int] = []
    changed = True
    while changed:
        changed = False
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) in parents:
                continue
            f = stat_fields(int(entry))
            if f and int(f[1]) in parents:
                parents.add(int(entry))
                found.append(int(entry))
                changed = True
    return found


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (all their threads), in seconds."""
    total = 0
    for pid in pids:
        f = stat_fields(pid)
        if f:
            total += int(f[11]) + int(f[12])  # utime, stime
    return total / _TICK


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent in processes (every CPU, /proc/stat; interrupts left out), in seconds."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = f
    return (user + nice + system + steal) / _TICK


def free_port(address: str = VIP_ADDRESS) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def http_get(host: str, port: int, path: str = "/", timeout: float = 2.0) -> tuple[int, dict[str, str], bytes]:
    """One GET on a new connection; (status, headers with lower-case names, body)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def wait_http(host: str, port: int, timeout: float = 15.0, child: Child | None = None) -> None:
    """Until GET / answers 200 (the proxy is up and its servers are usable)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if child is not None and not child.alive():
            raise RuntimeError(f"{child.name} exited ({child.proc.returncode}):\n{child.log_tail()}")
        try:
            status, _, _ = http_get(host, port)
            if status == 200:
                return
            last = status
        except OSError as e:
            last = e
        time.sleep(0.1)
    raise RuntimeError(f"{host}:{port} did not answer 200 within {timeout}s (last: {last})")


def route_check(host: str, port: int, n: int = 8) -> dict[str, Any]:
    """Which real servers answer through this target, and what they saw (X-Forwarded-For)."""
    replicas: dict[str, int] = {}
    xff: set[str] = set()
    for _ in range(n):
        status, headers, body = http_get(host, port)
        if status != 200:
            raise RuntimeError(f"{host}:{port} answered {status}")
        name = headers.get("x-pacslb-replica", "?")
        replicas[name] = replicas.get(name, 0) + 1
        with contextlib.suppress(ValueError, AttributeError):
            xff.add(str(json.loads(body).get("x_forwarded_for")))
    return {"replicas": dict(sorted(replicas.items())), "x_forwarded_for": sorted(xff)}


# --- configurations ----------------------------------------------------------------------------


def bench_config_data(listen_port: int, servers: list[tuple[str, int]]) -> dict[str, Any]:
    """The pacslb configuration of case (b): one layer7-http VIP, two real servers, HTTP check on /health.

    Everything else keeps the model's defaults.
    """
    return {
        "version": 1,
        "virtual_services": [
            {
                "name": "bench_http",
                "description": "bench/run.py: layer7-http in front of two demo real servers",
                "mode": "layer7-http",
                "listen": [{"address": VIP_ADDRESS, "port": listen_port}],
                "health_check": {"type": "http", "path": "/health"},
                "real_servers": [
                    {"name": f"r{i + 1}", "address": addr, "port": port} for i, (addr, port) in enumerate(servers)
                ],
            }
        ],
    }


def render_rendered(data: dict[str, Any], state_dir: Path, threads: int) -> str:
    """Case (b): validate the model and render it with pacslb's real HAProxy renderer."""
    from pacslb.model import validate_data

    try:
        from pacslb.engines.haproxy.render import HAProxyEnv, render
    except ImportError as e:
        raise RuntimeError(f"the HAProxy renderer is not available ({e}); run with --cases a,c,d") from None
    loaded = validate_data(data)
    if not loaded.ok:
        raise RuntimeError("bench configuration is invalid: " + "; ".join(str(p) for p in loaded.problems))
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "haproxy").mkdir(exist_ok=True)
    return render(loaded.config, HAProxyEnv(state_dir=state_dir, base_dir=state_dir, cpu_count=threads))


def render_template(path: Path, **values: Any) -> str:
    return string.Template(path.read_text()).substitute({k: str(v) for k, v in values.items()})


def haproxy_global_maxconn(cfg: str) -> int | None:
    """`maxconn` of the global section (None: HAProxy derives it from the open-files limit)."""
    m = re.search(r"^global\b(.*?)(?=^\S)", cfg + "\nend", re.M | re.S)
    g = re.search(r"^\s+maxconn\s+(\d+)\s*$", m.group(1), re.M) if m else None
    return int(g.group(1)) if g else None


def haproxy_check(cfg_path: Path) -> None:
    r = subprocess.run(["haproxy", "-c", "-q", "-f", str(cfg_path)], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"haproxy -c -f {cfg_path} failed:\n{r.stdout}{r.stderr}")


# --- wrk ---------------------------------------------------------------------------------------


def parse_wrk(stdout: str) -> dict[str, Any]:
    """The WRK_JSON line that bench/wrk-report.lua prints, with req/s and MiB/s added."""
    for line in stdout.splitlines():
        if line.startswith("WRK_JSON "):
            data = json.loads(line[len("WRK_JSON ") :])
            seconds = data["duration_us"] / 1e6 or 1e-9
            data["rps"] = data["requests"] / seconds
            data["mib_per_s"] = data["bytes"] / seconds / (1 << 20)
            data["socket_errors"] = sum(data["errors"][k] for k in ("connect", "read", "write", "timeout"))
            return data
    raise ValueError(f"no WRK_JSON line in wrk output:\n{stdout}")


def wrk_command(url: str, workload: Workload, duration: int, threads: int = 1) -> list[str]:
    cmd = [
        "wrk", "-t", str(threads), "-c", str(workload.connections), "-d", f"{int(duration)}s",
        "--timeout", "10s", "-s", str(LUA_REPORT),
    ]  # fmt: skip
    if workload.close:
        cmd += ["-H", "Connection: close"]
    return cmd + [url]


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


# --- the bench ---------------------------------------------------------------------------------


@dataclass
class Target:
    case: str
    host: str
    port: int
    pids: Callable[[], list[int]]  # the proxy's processes (none for the direct case)
    child: Child | None = None
    config: str | None = None
    route: dict[str, Any] = field(default_factory=dict)


@dataclass
class Options:
    duration: int = 10  # wrk takes whole seconds
    rounds: int = 3
    warmup: int = 1
    threads: int = 0  # HAProxy nbthread (b and c) and nginx workers (d); 0: the CPU count
    wrk_threads: int = 1
    cases: tuple[str, ...] = ("a", "b", "c", "d")
    workloads: tuple[str, ...] = tuple(WORKLOADS)
    quick: bool = False
    log: Callable[[str], None] = field(default=lambda line: print(line, flush=True))

    def effective_threads(self) -> int:
        return self.threads or os.cpu_count() or 1


@contextlib.contextmanager
def running_targets(opts: Options, tmp: Path) -> Iterator[tuple[dict[str, Target], DemoProcess]]:
    """Start the demo real servers and every proxy of opts.cases; stop them all on exit."""
    threads = opts.effective_threads()
    spec = demo_spec_for([(DEMO_SERVICE, 0, "http")], replicas=2, second_octet=DEMO_SECOND_OCTET)
    budget = len(opts.workloads) * len(opts.cases) * (opts.rounds * opts.duration + opts.warmup + 5) + 300
    children: list[Child] = []
    demo = DemoProcess(spec, max_lifetime=budget, stderr=subprocess.DEVNULL)
    try:
        demo.start()
        servers = [(r["address"], r["port"]) for r in demo.ready["services"][0]["replicas"]]
        targets: dict[str, Target] = {}

        if "a" in opts.cases:
            targets["a"] = Target("a", servers[0][0], servers[0][1], pids=lambda: [])

        def start(case: str, name: str, cmd: list[str], port: int, cfg: str) -> None:
            child = Child(name, cmd, tmp / f"{name}.log").start()
            children.append(child)
            wait_http(VIP_ADDRESS, port, child=child)
            targets[case] = Target(case, VIP_ADDRESS, port, pids=child.pids, child=child, config=cfg)

        if "b" in opts.cases:
            port = free_port()
            cfg = render_rendered(bench_config_data(port, servers), tmp / "state", threads)
            path = tmp / "rendered-haproxy.cfg"
            path.write_text(cfg)
            haproxy_check(path)
            start("b", "haproxy-rendered", ["haproxy", "-db", "-f", str(path)], port, cfg)
        if "c" in opts.cases:
            port = free_port()
            cfg = render_template(
                MINIMAL_HAPROXY_TEMPLATE,
                threads=threads,
                listen_address=VIP_ADDRESS,
                listen_port=port,
                server1=f"{servers[0][0]}:{servers[0][1]}",
                server2=f"{servers[1][0]}:{servers[1][1]}",
            )
            path = tmp / "minimal-haproxy.cfg"
            path.write_text(cfg)
            haproxy_check(path)
            start("c", "haproxy-minimal", ["haproxy", "-db", "-f", str(path)], port, cfg)
        if "d" in opts.cases:
            port = free_port()
            prefix = tmp / "nginx"
            prefix.mkdir()
            cfg = render_template(
                MINIMAL_NGINX_TEMPLATE,
                workers=threads,
                prefix=prefix,
                listen_address=VIP_ADDRESS,
                listen_port=port,
                server1=f"{servers[0][0]}:{servers[0][1]}",
                server2=f"{servers[1][0]}:{servers[1][1]}",
            )
            path = prefix / "nginx.conf"
            path.write_text(cfg)
            cmd = ["nginx", "-p", str(prefix), "-c", str(path), "-g", "daemon off;"]
            r = subprocess.run([*cmd[:-2], "-t", "-q"], capture_output=True, text=True, timeout=30)
            if r.returncode != 0:
                raise RuntimeError(f"nginx -t failed:\n{r.stdout}{r.stderr}")
            start("d", "nginx", cmd, port, cfg)

        for t in targets.values():
            t.route = route_check(t.host, t.port)
        yield targets, demo
    finally:
        for child in reversed(children):
            child.stop()
        demo.stop()


def measure(target: Target, workload: Workload, duration: int, demo_pid: int, wrk_threads: int = 1) -> dict[str, Any]:
    """One wrk run against one target, with the CPU time each side used during it."""
    url = f"http://{target.host}:{target.port}{workload.path}"
    proxy_pids = target.pids()
    proxy0, backend0, wrk0 = cpu_seconds(proxy_pids), cpu_seconds([demo_pid]), _children_cpu()
    busy0 = machine_busy_seconds()
    t0 = time.monotonic()
    r = subprocess.run(
        wrk_command(url, workload, duration, wrk_threads), capture_output=True, text=True, timeout=duration + 60
    )
    wall = time.monotonic() - t0
    if r.returncode != 0:
        raise RuntimeError(f"wrk failed ({r.returncode}) against {url}:\n{r.stdout}{r.stderr}")
    busy = machine_busy_seconds() - busy0
    data = parse_wrk(r.stdout)
    cpu = {
        "proxy": cpu_seconds(proxy_pids) - proxy0,
        "backend": cpu_seconds([demo_pid]) - backend0,
        "wrk": _children_cpu() - wrk0,
    }
    # whatever else ran on the machine meanwhile (other programs, kernel threads, the idle proxies)
    cpu["other"] = max(0.0, busy - sum(cpu.values()))
    data["cpu_s"] = {**{k: round(v, 3) for k, v in cpu.items()}, "wall": round(wall, 3)}
    data["other_load"] = round(cpu["other"] / (wall * (os.cpu_count() or 1)), 3)  # share of the machine
    if target.child is not None and not target.child.alive():
        raise RuntimeError(f"{target.child.name} died during the run:\n{target.child.log_tail()}")
    return data


def run_bench(opts: Options) -> dict[str, Any]:
    """Start everything, run every (workload, round, case), stop everything; the results document."""
    for tool in ("wrk", "haproxy", "nginx"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed (apt-get install -y wrk haproxy nginx-light)")
    started = datetime.datetime.now(datetime.timezone.utc)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="pacslb-bench-") as tmpname:
        tmp = Path(tmpname)
        with running_targets(opts, tmp) as (targets, demo):
            cases = [c for c in opts.cases if c in targets]
            opts.log("targets: " + ", ".join(f"{c}={targets[c].host}:{targets[c].port}" for c in cases))
            for wname in opts.workloads:
                workload = WORKLOADS[wname]
                if opts.warmup > 0:
                    for c in cases:
                        measure(targets[c], workload, opts.warmup, demo.pid, opts.wrk_threads)
                for rnd in range(opts.rounds):
                    k = rnd % len(cases)
                    order = cases[k:] + cases[:k]
                    for pos, c in enumerate(order):
                        data = measure(targets[c], workload, opts.duration, demo.pid, opts.wrk_threads)
                        runs.append({"workload": wname, "case": c, "round": rnd, "position": pos, **data})
                        opts.log(
                            f"{wname:16} round {rnd} {c} {CASES[c][0]:17} {data['rps']:10.1f} req/s"
                            f"  p50 {data['latency_us']['p50'] / 1000:7.2f} ms  p99 {data['latency_us']['p99'] / 1000:7.2f} ms"
                            f"  errors {data['socket_errors']}/{data['errors']['status']}  other load {data['other_load']:.0%}"
                        )
            logs = {t.child.name: t.child.log_tail(40) for t in targets.values() if t.child is not None}
            log_bytes = {t.child.name: t.child.log.stat().st_size for t in targets.values() if t.child is not None}
            doc = {
                "benchmark": "l7",
                "started": started.isoformat(timespec="seconds"),
                "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "quick": opts.quick,
                "parameters": {
                    "duration_s": opts.duration,
                    "rounds": opts.rounds,
                    "warmup_s": opts.warmup,
                    "wrk_threads": opts.wrk_threads,
                    "haproxy_nbthread": opts.effective_threads(),
                    "rendered_nbthread": haproxy_nbthread(targets["b"].config) if "b" in targets else None,
                    "nginx_workers": opts.effective_threads(),
                    "rendered_maxconn": haproxy_global_maxconn(targets["b"].config) if "b" in targets else None,
                    "open_files_limit": resource.getrlimit(resource.RLIMIT_NOFILE),
                    "workloads": {
                        w: {"path": WORKLOADS[w].path, "connections": WORKLOADS[w].connections, "close": WORKLOADS[w].close,
                            "description": WORKLOADS[w].description}
                        for w in opts.workloads
                    },  # fmt: skip
                    "order": "per workload: every round runs every case, order rotated by one each round",
                },
                "machine": machine_info(),
                "versions": versions(),
                "cases": {
                    c: {"name": CASES[c][0], "description": CASES[c][1], "address": f"{targets[c].host}:{targets[c].port}",
                        "route": targets[c].route}
                    for c in cases
                },  # fmt: skip
                "configs": {c: targets[c].config for c in cases if targets[c].config is not None},
                "engine_output_bytes": log_bytes,  # stdout + stderr of each engine (HAProxy logs to stdout)
                "engine_output_tails": logs,
                "runs": runs,
            }
    doc["summary"] = summarize(runs)
    return doc


# --- summary and report ------------------------------------------------------------------------


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for w in dict.fromkeys(r["workload"] for r in runs):
        per_case: dict[str, Any] = {}
        for c in sorted({r["case"] for r in runs if r["workload"] == w}):
            rs = [r for r in runs if r["workload"] == w and r["case"] == c]
            per_case[c] = {
                "samples": len(rs),
                "rps": _median([r["rps"] for r in rs]),
                "rps_all": [round(r["rps"], 1) for r in rs],
                "mib_per_s": _median([r["mib_per_s"] for r in rs]),
                "p50_ms": _median([r["latency_us"]["p50"] / 1000 for r in rs]),
                "p90_ms": _median([r["latency_us"]["p90"] / 1000 for r in rs]),
                "p99_ms": _median([r["latency_us"]["p99"] / 1000 for r in rs]),
                "proxy_cpu_us_per_req": _median([r["cpu_s"]["proxy"] / r["requests"] * 1e6 for r in rs if r["requests"]]),
                "backend_cpu_us_per_req": _median([r["cpu_s"]["backend"] / r["requests"] * 1e6 for r in rs if r["requests"]]),
                "requests": sum(r["requests"] for r in rs),
                "socket_errors": sum(r["socket_errors"] for r in rs),
                "non_2xx_3xx": sum(r["errors"]["status"] for r in rs),
            }
        ratios: dict[str, Any] = {}
        for num, den in (("b", "c"), ("b", "d"), ("b", "a"), ("c", "d")):
            if num in per_case and den in per_case and per_case[den]["rps"]:
                ratios[f"{num}/{den}"] = per_case[num]["rps"] / per_case[den]["rps"]
        # b/c per round: the two runs of a round are minutes apart at most, so drift cancels better
        rounds = sorted({r["round"] for r in runs if r["workload"] == w})
        paired = []
        for rnd in rounds:
            b = [r["rps"] for r in runs if r["workload"] == w and r["round"] == rnd and r["case"] == "b"]
            c = [r["rps"] for r in runs if r["workload"] == w and r["round"] == rnd and r["case"] == "c"]
            if b and c and c[0]:
                paired.append(b[0] / c[0])
        if paired:
            ratios["b/c_per_round"] = [round(x, 3) for x in paired]
        out[w] = {"cases": per_case, "ratios": ratios}
    return out


def _other_load(doc: dict[str, Any]) -> str:
    xs = [r["other_load"] for r in doc["runs"] if "other_load" in r]
    if not xs:
        return "not recorded."
    return f"median {statistics.median(xs):.0%} of its CPU (more than a few percent makes the numbers noisy)."


def markdown_table(doc: dict[str, Any], results_name: str | None = None) -> str:
    p = doc["parameters"]
    v = doc["versions"]
    m = doc["machine"]
    lines = [
        f"Run {doc['started']}{' (--quick)' if doc.get('quick') else ''}"
        + (f", raw numbers in `bench/results/{results_name}`" if results_name else "")
        + ".",
        f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), Linux {m['kernel']}; "
        f"{v['haproxy']}, nginx {v['nginx']}, wrk {v['wrk']}, pacslb {v['pacslb']} ({v['git_commit'][:10]}"
        f"{', uncommitted changes' if v['git_dirty'] else ''}).",
        f"wrk -t{p['wrk_threads']}, {p['duration_s']:g} s per measurement, {p['rounds']} round(s) per case "
        f"(median shown), HAProxy nbthread {p['haproxy_nbthread']} in b and c"
        f" (rendered file says {p['rendered_nbthread']}), nginx {p['nginx_workers']} workers.",
        f"Other work on the machine during the measurements: {_other_load(doc)}",
        "",
        "| workload | case | req/s | MiB/s | p50 ms | p90 ms | p99 ms | proxy CPU µs/req | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for w, s in doc["summary"].items():
        wl = p["workloads"][w]
        label = f"{w} (-c{wl['connections']})"
        for c, r in s["cases"].items():
            name = doc["cases"][c]["name"]
            lines.append(
                f"| {label} | {c} {name} | {fmt(r['rps'], ',.0f')} | {fmt(r['mib_per_s'], ',.0f')} | "
                f"{fmt(r['p50_ms'], '.2f')} | {fmt(r['p90_ms'], '.2f')} | {fmt(r['p99_ms'], '.2f')} | "
                f"{fmt(r['proxy_cpu_us_per_req'], '.1f') if c != 'a' else '-'} | "
                f"{r['socket_errors']}/{r['non_2xx_3xx']} |"
            )
    lines += [
        "",
        "Errors: socket errors / responses with status >= 400. Proxy CPU: user + system time of the proxy's "
        "processes during the run, divided by the requests served.",
        "",
        f"| workload | b/c req/s | b/c per round | b/d req/s | b/a req/s | b/c >= {RATIO_TARGET} |",
        "|---|---:|---|---:|---:|---|",
    ]
    for w, s in doc["summary"].items():
        r = s["ratios"]
        bc = r.get("b/c")
        ok = "-" if bc is None else ("yes" if bc >= RATIO_TARGET else "**no**")
        per_round = ", ".join(f"{x:.3f}" for x in r.get("b/c_per_round", [])) or "-"
        lines.append(
            f"| {w} | {fmt(bc, '.3f')} | {per_round} | {fmt(r.get('b/d'), '.3f')} | {fmt(r.get('b/a'), '.3f')} | {ok} |"
        )
    return "\n".join(lines) + "\n"


# --- facts about the machine -------------------------------------------------------------------


def _first_line(cmd: list[str]) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    out = (r.stdout or r.stderr).strip().splitlines()
    return out[0] if out else "unknown"


def versions() -> dict[str, Any]:
    nginx = _first_line(["nginx", "-v"]).split("/", 1)[-1]
    wrk = _first_line(["wrk", "--version"])
    wrk = wrk.split()[1] if wrk.startswith("wrk ") else wrk
    commit = _first_line(["git", "-C", str(REPO), "rev-parse", "HEAD"])
    try:
        dirty = bool(subprocess.run(["git", "-C", str(REPO), "status", "--porcelain"], capture_output=True,
                                    text=True, timeout=10).stdout.strip())  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        dirty = None
    return {
        "haproxy": " ".join(_first_line(["haproxy", "-v"]).split()[:3]),
        "nginx": nginx,
        "wrk": wrk,
        "pacslb": PACSLB_VERSION,
        "python": platform.python_version(),
        "git_commit": commit,
        "git_dirty": dirty,
    }


def machine_info() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "kernel": platform.release(),
        "loadavg_at_end": os.getloadavg(),
    }


# --- command line ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="CI smoke: 3 s per measurement, 1 round; README untouched")
    ap.add_argument("--duration", type=int, help="seconds per measurement (default 10, --quick 3)")
    ap.add_argument("--rounds", type=int, help="rounds per workload; the median is reported (default 3, --quick 1)")
    ap.add_argument("--warmup", type=int, help="seconds of unrecorded load per case before each workload (default 1)")
    ap.add_argument("--threads", type=int, default=0, help="HAProxy nbthread (b, c) and nginx workers (d); 0: CPU count")
    ap.add_argument("--cases", default="a,b,c,d", help="comma-separated subset of a,b,c,d")
    ap.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated subset of " + ",".join(WORKLOADS))
    ap.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where <timestamp>-l7.json goes")
    ap.add_argument("--readme", type=Path, help="regenerate the results section of this file (default bench/README.md, not with --quick)")
    ap.add_argument("--no-readme", action="store_true", help="leave the README alone")
    ap.add_argument("--report", type=Path, metavar="RESULTS_JSON",
                    help="run nothing: print the table of an earlier results file and put it in the README")  # fmt: skip
    return ap.parse_args(argv)


def options_from(args: argparse.Namespace) -> Options:
    cases = split_choices(args.cases, CASES, "case")
    workloads = split_choices(args.workloads, WORKLOADS, "workload")
    duration = args.duration if args.duration is not None else (3 if args.quick else 10)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    warmup = args.warmup if args.warmup is not None else 1
    if not 0 < duration <= 120 or not 1 <= rounds <= 20 or not 0 <= warmup <= 30:
        raise SystemExit("bounds: 0 < duration <= 120, 1 <= rounds <= 20, 0 <= warmup <= 30")
    return Options(duration=duration, rounds=rounds, warmup=warmup, threads=args.threads, cases=cases,
                   workloads=workloads, quick=args.quick)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report is not None:
        doc = json.loads(args.report.read_text())
        table = markdown_table(doc, args.report.name)
        print(table)
        readme = args.readme or README
        if not args.no_readme:
            update_readme(readme, table)
            print(f"table written to {readme}")
        return 0
    opts = options_from(args)
    doc = run_bench(opts)
    stamp = datetime.datetime.fromisoformat(doc["started"]).strftime("%Y%m%dT%H%M%SZ")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    results = args.results_dir / f"{stamp}-l7.json"
    results.write_text(json.dumps(doc, indent=2) + "\n")
    table = markdown_table(doc, results.name)
    print()
    print(table)
    print(f"results: {results}")
    readme = args.readme or (None if args.quick else README)
    if readme is not None and not args.no_readme:
        update_readme(readme, table)
        print(f"table written to {readme}")
    bad = {w: s["ratios"]["b/c"] for w, s in doc["summary"].items() if s["ratios"].get("b/c", 1) < RATIO_TARGET}
    errors = sum(r["socket_errors"] + r["errors"]["status"] for r in doc["runs"])
    if errors:
        print(f"warning: {errors} socket errors or error statuses during the runs", file=sys.stderr)
    if bad:
        print(f"note: b/c below {RATIO_TARGET}: " + ", ".join(f"{w} {x:.3f}" for w, x in bad.items()), file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
