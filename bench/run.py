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
import http.client
import json
import os
import resource
import socket
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
sys.path.insert(0, str(HERE))  # bench/lib, the benchmarks' shared helpers
from lib.checkout import use_checkout  # noqa: E402

use_checkout(tests=False)

from lib.cli import measurement_counts, split_choices  # noqa: E402
from lib.engines import haproxy_check, haproxy_global_maxconn, haproxy_nbthread, render_haproxy  # noqa: E402
from lib.machine import machine_info, require_tools, versions  # noqa: E402
from lib.procfs import cpu_seconds, machine_busy_seconds  # noqa: E402
from lib.procs import Child, wait_until  # noqa: E402
from lib.report import fmt, markers, replace_section, stamp, utc_now, write_results  # noqa: E402
from lib.rounds import schedule  # noqa: E402
from lib.stats import median, per_request_us, ratio  # noqa: E402
from lib.wrk import Workload, errors, medians, parse_wrk, report_of, totals, wrk_command  # noqa: E402,F401

from pacslb.demo import DemoProcess, demo_spec_for  # noqa: E402

MINIMAL_HAPROXY_TEMPLATE = HERE / "minimal-haproxy.cfg.tmpl"
MINIMAL_NGINX_TEMPLATE = HERE / "minimal-nginx.conf.tmpl"
README = HERE / "README.md"
RESULTS_DIR = HERE / "results"
MARK_START, MARK_END = markers("l7")


def update_readme(path: Path, section: str) -> None:
    """This benchmark's section of bench/README.md, between its markers; the rest of the file is kept."""
    replace_section(path, "l7", section)


# 127.232.10.1 and 127.232.10.2: the two demo real servers (away from the tests' addresses).
DEMO_SECOND_OCTET = 232
DEMO_SERVICE = "bench_http"
VIP_ADDRESS = "127.0.0.1"
BIG_BYTES = 10 * 1024 * 1024


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


# --- targets -----------------------------------------------------------------------------------


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
    last: object = None

    def answers() -> bool:
        nonlocal last
        if child is not None and not child.alive():
            raise RuntimeError(f"{child.name} exited ({child.proc.returncode}):\n{child.log_tail()}")
        try:
            status, _, _ = http_get(host, port)
        except OSError as e:
            last = e
            return False
        last = status
        return status == 200

    if not wait_until(answers, timeout):
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
                "real_servers": [{"name": f"r{i + 1}", "address": addr, "port": port} for i, (addr, port) in enumerate(servers)],
            }
        ],
    }


def render_rendered(data: dict[str, Any], state_dir: Path, threads: int) -> str:
    """Case (b): validate the model and render it with pacslb's real HAProxy renderer."""
    try:
        import pacslb.engines.haproxy.render  # noqa: F401
    except ImportError as e:
        raise RuntimeError(f"the HAProxy renderer is not available ({e}); run with --cases a,c,d") from None
    return render_haproxy(data, state_dir, threads)


def render_template(path: Path, **values: Any) -> str:
    return string.Template(path.read_text()).substitute({k: str(v) for k, v in values.items()})


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
    r = subprocess.run(wrk_command(url, workload, duration, wrk_threads), capture_output=True, text=True, timeout=duration + 60)
    wall = time.monotonic() - t0
    busy = machine_busy_seconds() - busy0
    data = report_of(r, f"against {url}")
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
    require_tools(("wrk", "haproxy", "nginx"), "apt-get install -y wrk haproxy nginx-light")
    started = utc_now()
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
                for rnd, pos, c in schedule(cases, opts.rounds):
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
                "finished": utc_now().isoformat(timespec="seconds"),
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
                    "workloads": {w: WORKLOADS[w].parameters() for w in opts.workloads},
                    "order": "per workload: every round runs every case, order rotated by one each round",
                },
                "machine": machine_info(),
                "versions": versions(),
                "cases": {
                    c: {
                        "name": CASES[c][0],
                        "description": CASES[c][1],
                        "address": f"{targets[c].host}:{targets[c].port}",
                        "route": targets[c].route,
                    }
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


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for w in dict.fromkeys(r["workload"] for r in runs):
        per_case: dict[str, Any] = {}
        for c in sorted({r["case"] for r in runs if r["workload"] == w}):
            rs = [r for r in runs if r["workload"] == w and r["case"] == c]
            per_case[c] = {
                **medians(rs, ("p50", "p90", "p99")),
                "proxy_cpu_us_per_req": median(per_request_us(r["cpu_s"]["proxy"], r["requests"]) for r in rs),
                "backend_cpu_us_per_req": median(per_request_us(r["cpu_s"]["backend"], r["requests"]) for r in rs),
                **totals(rs),
            }
        ratios: dict[str, Any] = {}
        for num, den in (("b", "c"), ("b", "d"), ("b", "a"), ("c", "d")):
            if num in per_case and den in per_case and per_case[den]["rps"]:
                ratios[f"{num}/{den}"] = ratio(per_case[num]["rps"], per_case[den]["rps"])
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
    return f"median {median(xs):.0%} of its CPU (more than a few percent makes the numbers noisy)."


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
        lines.append(f"| {w} | {fmt(bc, '.3f')} | {per_round} | {fmt(r.get('b/d'), '.3f')} | {fmt(r.get('b/a'), '.3f')} | {ok} |")
    return "\n".join(lines) + "\n"


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
    ap.add_argument(
        "--readme", type=Path, help="regenerate the results section of this file (default bench/README.md, not with --quick)"
    )
    ap.add_argument("--no-readme", action="store_true", help="leave the README alone")
    ap.add_argument("--report", type=Path, metavar="RESULTS_JSON",
                    help="run nothing: print the table of an earlier results file and put it in the README")  # fmt: skip
    return ap.parse_args(argv)


def options_from(args: argparse.Namespace) -> Options:
    cases = split_choices(args.cases, CASES, "case")
    workloads = split_choices(args.workloads, WORKLOADS, "workload")
    duration, rounds, warmup = measurement_counts(args)
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
    results = write_results(args.results_dir, f"{stamp(doc['started'])}-l7.json", doc)
    table = markdown_table(doc, results.name)
    print()
    print(table)
    print(f"results: {results}")
    readme = args.readme or (None if args.quick else README)
    if readme is not None and not args.no_readme:
        update_readme(readme, table)
        print(f"table written to {readme}")
    bad = {w: s["ratios"]["b/c"] for w, s in doc["summary"].items() if s["ratios"].get("b/c", 1) < RATIO_TARGET}
    failed = errors(doc["runs"])
    if failed:
        print(f"warning: {failed} socket errors or error statuses during the runs", file=sys.stderr)
    if bad:
        print(f"note: b/c below {RATIO_TARGET}: " + ", ".join(f"{w} {x:.3f}" for w, x in bad.items()), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
