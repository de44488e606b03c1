#!/usr/bin/env python3
"""Layer 7 proxy benchmark: the proxy on a CPU of its own, nginx real servers, HTTP and True PACS's TLS path.

    .venv/bin/python bench/proxy.py            # full run (5 s per measurement, 3 rounds)
    .venv/bin/python bench/proxy.py --smoke    # under 30 s: every case, three workloads, 1 s each; README untouched

What is measured is the proxy, not the real servers: the proxy runs on one CPU (the last this process may use,
`nbthread 1` / `worker_processes 1`), and wrk, the handshake clients, the real servers and this harness on another.
Each measurement reports req/s and the proxy's CPU time per request (time its threads ran on a CPU, to the
nanosecond: /proc/PID/task/TID/schedstat), so "per proxy core" is 1 / (CPU seconds per request): requests a fully busy proxy core serves.
That figure does not depend on whether the proxy's core was saturated during the run, which matters on a
machine other people share.

Real servers: one nginx (one worker) listening on two loopback addresses (127.233.10.1 and .2), plain HTTP and
HTTPS (ECDSA certificate of a CA made for the run), serving a 256-byte file and a 10 MiB file.

Cases (all with the same real servers, one process each, pinned to the proxy's CPU):
  rendered          HAProxy with the configuration pacslb renders from the model's defaults
  rendered-reuse    the same with connection_reuse: always (see docs/configuration.md#connection-reuse)
  minimal           HAProxy with bench/minimal-haproxy-tls.cfg.tmpl: the same TLS settings, nothing else
  nginx             nginx with bench/minimal-nginx-tls.conf.tmpl: the same termination and re-encryption

Workloads: plain HTTP (small keep-alive, small with a new connection per request, 10 MiB), HTTPS with TLS
terminated and re-encrypted to HTTPS real servers (True PACS VIP 2; the same three, ECDSA certificate), and
new TLS handshakes (bench/lib/handshakes.py, no request): full and resumed (TLS 1.3), RSA 2048 and ECDSA
P-256 certificates. The bound for handshakes is `openssl speed`'s sign rate for the same key on the proxy's
CPU; bench/tls_cost.py takes a handshake's cost apart.

Interleaved: per workload, every round runs every case once, the order rotated each round; medians of
the rounds. Writes bench/results/<timestamp>-proxy.json and regenerates bench/README.md between
``<!-- results:proxy start -->`` and ``<!-- results:proxy end -->``.

Loopback only; every child is started under timeout(1), dies with this process (PR_SET_PDEATHSIG), and is
stopped by its PID in a finally block.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import socket
import ssl
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

from lib.engines import haproxy_check, render_haproxy  # noqa: E402
from lib.machine import machine_info, require_tools, versions  # noqa: E402
from lib.procfs import run_seconds  # noqa: E402
from lib.procs import Child, bounded, wait_until  # noqa: E402
from lib.report import fmt, markers, replace_section, stamp, utc_now, write_results  # noqa: E402
from lib.rounds import schedule  # noqa: E402
from lib.stats import median, ratio  # noqa: E402
from lib.wrk import Workload, report_of, wrk_command  # noqa: E402

from pacslb import pki  # noqa: E402

README = HERE / "README.md"
RESULTS_DIR = HERE / "results"
MINIMAL_HAPROXY = HERE / "minimal-haproxy-tls.cfg.tmpl"
MINIMAL_NGINX = HERE / "minimal-nginx-tls.conf.tmpl"
MARK_START, MARK_END = markers("proxy")
SMALL_BYTES = 256
BIG_BYTES = 10 * 1024 * 1024
SERVER_ADDRESSES = ("127.233.10.1", "127.233.10.2")
VIP = "127.0.0.1"
TARGET_RATIO_MINIMAL = 0.97  # the issue: rendered / minimal >= 0.97
TARGET_RATIO_NGINX = 1.0  # rendered >= nginx per proxy core
TARGET_HANDSHAKE_SHARE = 0.5  # handshakes per core >= 0.5 x openssl speed's sign rate

CASES: dict[str, str] = {
    "rendered": "HAProxy, the configuration pacslb renders (model defaults)",
    "rendered-reuse": "HAProxy, pacslb's rendering with connection_reuse: always (as the True PACS template's services)",
    "minimal": "HAProxy, bench/minimal-haproxy-tls.cfg.tmpl (same TLS settings, nothing else)",
    "nginx": "nginx, bench/minimal-nginx-tls.conf.tmpl (same termination and re-encryption)",
}


@dataclass(frozen=True)
class Load:
    """One workload: wrk on a listener (`http`, `https-ec`), or TLS handshakes on a listener (`https-ec`, `https-rsa`)."""

    name: str
    listener: str  # http, https-ec, https-rsa
    kind: str  # wrk, handshake
    path: str = "/small"
    connections: int = 50
    close: bool = False
    resumed: bool = False
    key: str = "ec"
    description: str = ""

    def wrk(self) -> Workload:
        return Workload(self.name, self.path, self.connections, self.close, self.description)


LOADS: dict[str, Load] = {
    w.name: w
    for w in (
        Load("http-small-keepalive", "http", "wrk", description="GET 256 B, keep-alive, 50 connections"),
        Load("http-small-close", "http", "wrk", close=True, description="GET 256 B, a new connection per request"),
        Load("http-10mb", "http", "wrk", path="/10mb", connections=8, description="GET 10 MiB, keep-alive, 8 connections"),
        Load("https-small-keepalive", "https-ec", "wrk", description="HTTPS, re-encrypted: GET 256 B, keep-alive"),
        Load("https-small-close", "https-ec", "wrk", close=True,
             description="HTTPS, re-encrypted: GET 256 B, a new connection (full TLS handshake) per request"),
        Load("https-10mb", "https-ec", "wrk", path="/10mb", connections=8, description="HTTPS, re-encrypted: GET 10 MiB"),
        Load("handshake-full-ec", "https-ec", "handshake", description="TLS 1.3 full handshakes, ECDSA P-256"),
        Load("handshake-full-rsa", "https-rsa", "handshake", key="rsa", description="TLS 1.3 full handshakes, RSA 2048"),
        Load("handshake-resumed-ec", "https-ec", "handshake", resumed=True, description="TLS 1.3 resumed, ECDSA"),
        Load("handshake-resumed-rsa", "https-rsa", "handshake", resumed=True, key="rsa", description="TLS 1.3 resumed, RSA"),
    )
}  # fmt: skip
SMOKE_LOADS = ("http-small-keepalive", "https-small-close", "handshake-resumed-rsa")
HANDSHAKE_CLIENTS = 3  # parallel bench/lib/handshakes.py processes


# --- the CPU split -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuPlan:
    """The proxy's CPU and the one everything else shares (both None on a single-CPU machine: nothing pinned)."""

    proxy: int | None
    rest: int | None

    @classmethod
    def choose(cls) -> "CpuPlan":
        cpus = sorted(os.sched_getaffinity(0))
        return cls(cpus[-1], cpus[0]) if len(cpus) >= 2 else cls(None, None)

    def on_proxy(self, cmd: list[str]) -> list[str]:
        return ["taskset", "-c", str(self.proxy), *cmd] if self.proxy is not None else cmd

    def on_rest(self, cmd: list[str]) -> list[str]:
        return ["taskset", "-c", str(self.rest), *cmd] if self.rest is not None else cmd


# --- files: certificates, documents, configurations -----------------------------------------------


def free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


@dataclass
class Files:
    tmp: Path
    ca: Path
    server_pem: Path  # the real servers' certificate + key (ECDSA)
    vip_ec: Path
    vip_rsa: Path
    docroot: Path


def make_files(tmp: Path) -> Files:
    """A CA, the real servers' certificate, the VIP's ECDSA and RSA certificates, the two documents."""
    ca = pki.make_ca("pacslb bench CA")
    certs = tmp / "certs"
    f = Files(tmp, certs / "ca.pem", certs / "server.pem", certs / "vip-ec.pem", certs / "vip-rsa.pem", tmp / "docroot")
    pki.write_pem(f.ca, ca.cert_pem)
    pki.write_pem(f.server_pem, pki.issue(ca, "bench real server", [*SERVER_ADDRESSES, "localhost"]).bundle(), private=True)
    pki.write_pem(f.vip_ec, pki.issue(ca, "bench VIP", [VIP, "localhost"], key_type="ec").bundle(chain=[ca]), private=True)
    pki.write_pem(f.vip_rsa, pki.issue(ca, "bench VIP", [VIP, "localhost"], key_type="rsa").bundle(chain=[ca]), private=True)
    os.chmod(tmp, 0o755)  # nginx workers run as nobody and read the documents
    f.docroot.mkdir(mode=0o755)
    (f.docroot / "small").write_bytes(b"x" * (SMALL_BYTES - 1) + b"\n")
    with open(f.docroot / "10mb", "wb") as out:
        out.write(os.urandom(BIG_BYTES))
    (f.docroot / "health").write_text("ok\n")
    return f


REAL_SERVER_NGINX = """\
# the real servers of bench/proxy.py: one nginx worker, two addresses, HTTP and HTTPS
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    sendfile on;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    ssl_certificate {cert};
    ssl_certificate_key {cert};
    ssl_session_cache shared:RS:10m;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy; fastcgi_temp_path {prefix}/fcgi; uwsgi_temp_path {prefix}/uwsgi; scgi_temp_path {prefix}/scgi;
{servers}
}}
"""


def real_server_conf(prefix: Path, files: Files, ports: dict[str, tuple[int, int]]) -> str:
    servers = "".join(
        f"    server {{ listen {a}:{http}; listen {a}:{https} ssl; root {files.docroot}; add_header X-Real-Server {name}; }}\n"
        for name, (a, (http, https)) in zip(("r1", "r2"), ((a, ports[a]) for a in SERVER_ADDRESSES), strict=True)
    )
    return REAL_SERVER_NGINX.format(prefix=prefix, cert=files.server_pem, servers=servers)


def pacslb_config(vips: dict[str, int], servers: dict[str, tuple[int, int]], files: Files, reuse: str | None) -> dict:
    """The model of the rendered cases: an HTTP VIP, and two HTTPS VIPs (ECDSA, RSA) re-encrypting, as True PACS VIP 2."""

    def service(name: str, port: int, tls: Path | None) -> dict[str, Any]:
        idx = 1 if tls else 0
        vs: dict[str, Any] = {
            "name": name,
            "mode": "layer7-http",
            "listen": [{"address": VIP, "port": port}],
            "health_check": {"type": "https" if tls else "http", "path": "/health"},
            "real_servers": [
                {"name": f"r{i + 1}", "address": a, "port": servers[a][idx], "encrypted": tls is not None}
                for i, a in enumerate(SERVER_ADDRESSES)
            ],
        }
        if tls is not None:
            vs["tls"] = {"certificates": [str(tls)]}
            vs["server_tls"] = {"verify": "required", "ca_file": str(files.ca)}
        if reuse is not None:
            vs["connection_reuse"] = reuse
        return vs

    return {
        "version": 1,
        "settings": {"threads": 1, "files": {"allowed_directories": [str(files.tmp)]}},
        "virtual_services": [
            service("bench_http", vips["http"], None),
            service("bench_https_ec", vips["https-ec"], files.vip_ec),
            service("bench_https_rsa", vips["https-rsa"], files.vip_rsa),
        ],
    }


def template_values(vips: dict[str, int], servers: dict[str, tuple[int, int]], files: Files, prefix: Path) -> dict[str, str]:
    a1, a2 = SERVER_ADDRESSES
    return {
        "prefix": str(prefix),
        "vip": VIP,
        "http_port": str(vips["http"]),
        "https_ec_port": str(vips["https-ec"]),
        "https_rsa_port": str(vips["https-rsa"]),
        "r1_http": f"{a1}:{servers[a1][0]}",
        "r2_http": f"{a2}:{servers[a2][0]}",
        "r1_https": f"{a1}:{servers[a1][1]}",
        "r2_https": f"{a2}:{servers[a2][1]}",
        "ca": str(files.ca),
        "vip_ec": str(files.vip_ec),
        "vip_rsa": str(files.vip_rsa),
    }


def case_config(case: str, vips: dict[str, int], servers: dict[str, tuple[int, int]], files: Files, prefix: Path,
                reuse: str) -> str:  # fmt: skip
    """The proxy configuration of one case (nginx's for "nginx", HAProxy's for the others)."""
    if case in ("rendered", "rendered-reuse"):
        data = pacslb_config(vips, servers, files, reuse if case == "rendered-reuse" else None)
        return render_haproxy(data, prefix / "state", 1)
    template = MINIMAL_NGINX if case == "nginx" else MINIMAL_HAPROXY
    return string.Template(template.read_text()).substitute(template_values(vips, servers, files, prefix))


# --- the targets ---------------------------------------------------------------------------------


@dataclass
class Target:
    case: str
    ports: dict[str, int]  # listener -> port
    child: Child
    config: str


def _get(url_host: str, port: int, path: str, tls: bool, ca: Path) -> int:
    ctx = ssl.create_default_context(cafile=str(ca)) if tls else None
    with socket.create_connection((url_host, port), timeout=3) as raw:
        sock = ctx.wrap_socket(raw, server_hostname=url_host) if ctx else raw
        with sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {url_host}\r\nConnection: close\r\n\r\n".encode())
            head = sock.recv(64)
    m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    return int(m.group(1)) if m else 0


def wait_serving(target: Target, ca: Path, timeout: float = 30.0) -> None:
    """Until every listener of the target answers GET /small with 200 (its real servers are up)."""
    last: object = None

    def answers() -> bool:
        nonlocal last
        if not target.child.alive():
            raise RuntimeError(f"{target.case} exited:\n{target.child.log_tail()}")
        try:
            codes = [_get(VIP, port, "/small", name != "http", ca) for name, port in target.ports.items()]
        except (OSError, ssl.SSLError) as e:
            last = e
            return False
        last = codes
        return all(c == 200 for c in codes)

    if not wait_until(answers, timeout, interval=0.2):
        raise RuntimeError(f"{target.case} did not answer 200 on every listener within {timeout}s (last: {last})")


@dataclass
class Options:
    duration: int = 5
    rounds: int = 3
    warmup: int = 1
    cases: tuple[str, ...] = tuple(CASES)
    loads: tuple[str, ...] = tuple(LOADS)
    reuse: str = "always"
    speed_seconds: int = 3
    smoke: bool = False
    log: Callable[[str], None] = field(default=lambda line: print(line, flush=True))

    def lifetime(self) -> int:
        """Seconds every child may live at most (timeout -s KILL), from the work planned."""
        return len(self.loads) * len(self.cases) * (self.rounds * (self.duration + 3) + self.warmup + 3) + 120


@contextlib.contextmanager
def running(opts: Options, plan: CpuPlan, tmp: Path) -> Iterator[tuple[dict[str, Target], Files, Child]]:
    files = make_files(tmp)
    life = opts.lifetime()
    children: list[Child] = []
    try:
        servers = {a: (free_port(a), free_port(a)) for a in SERVER_ADDRESSES}
        rs_prefix = tmp / "real-servers"
        rs_prefix.mkdir()
        (rs_prefix / "nginx.conf").write_text(real_server_conf(rs_prefix, files, servers))
        rs_cmd = ["nginx", "-e", str(rs_prefix / "error.log"), "-p", str(rs_prefix), "-c", str(rs_prefix / "nginx.conf")]
        rs = Child("real-servers", bounded(plan.on_rest([*rs_cmd, "-g", "daemon off;"]), life), tmp / "real-servers.log")
        children.append(rs.start())
        targets: dict[str, Target] = {}
        for case in opts.cases:
            vips = {"http": free_port(VIP), "https-ec": free_port(VIP), "https-rsa": free_port(VIP)}
            prefix = tmp / case
            prefix.mkdir()
            cfg = case_config(case, vips, servers, files, prefix, opts.reuse)
            path = prefix / ("nginx.conf" if case.startswith("nginx") else "haproxy.cfg")
            path.write_text(cfg)
            if case.startswith("nginx"):
                cmd = ["nginx", "-e", str(prefix / "error.log"), "-p", str(prefix), "-c", str(path)]
                r = subprocess.run([*cmd, "-t", "-q"], capture_output=True, text=True, timeout=30)
                if r.returncode != 0:
                    raise RuntimeError(f"nginx -t failed:\n{r.stdout}{r.stderr}")
                cmd += ["-g", "daemon off;"]
            else:
                haproxy_check(path)
                cmd = ["haproxy", "-db", "-f", str(path)]
            child = Child(case, bounded(plan.on_proxy(cmd), life), tmp / f"{case}.log").start()
            children.append(child)
            targets[case] = Target(case, vips, child, cfg)
            wait_serving(targets[case], files.ca)
        yield targets, files, rs
    finally:
        for child in reversed(children):
            child.stop()


# --- measuring -----------------------------------------------------------------------------------


def proxy_pids(target: Target) -> list[int]:
    """The proxy's own processes (haproxy, or nginx master and worker), not timeout(1) above them."""
    return [p for p in target.child.pids() if p != target.child.pid]


HANDSHAKE_CLIENT = HERE / "lib" / "handshakes.py"


def handshake_command(port: int, load: Load, duration: int) -> list[str]:
    """bench/lib/handshakes.py: new TLS connections without a request, full or resumed (TLS 1.3)."""
    return [sys.executable, str(HANDSHAKE_CLIENT), VIP, str(port), str(duration), "resumed" if load.resumed else "full"]


def measure(target: Target, load: Load, duration: int, plan: CpuPlan) -> dict[str, Any]:
    pids = proxy_pids(target)
    port = target.ports[load.listener]
    cpu0, t0 = run_seconds(pids), time.monotonic()
    if load.kind == "wrk":
        scheme = "http" if load.listener == "http" else "https"
        cmd = plan.on_rest(wrk_command(f"{scheme}://{VIP}:{port}{load.path}", load.wrk(), duration))
        data = report_of(subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60), f"{target.case}")
        requests = data["requests"]
        errors = data["socket_errors"] + data["errors"]["status"]
        out: dict[str, Any] = {"rps": data["rps"], "mib_per_s": data["mib_per_s"], "p99_ms": data["latency_us"]["p99"] / 1000}
    else:
        procs = [
            subprocess.Popen(plan.on_rest(handshake_command(port, load, duration)), stdout=subprocess.PIPE, text=True,
                             stdin=subprocess.DEVNULL)
            for _ in range(HANDSHAKE_CLIENTS)
        ]  # fmt: skip
        parsed = []
        for p in procs:
            stdout, _ = p.communicate(timeout=duration + 60)
            parsed.append(json.loads(stdout.strip().splitlines()[-1]))
        requests = sum(p["handshakes"] for p in parsed)
        resumed = sum(p["resumed"] for p in parsed)
        errors = sum(p["failed"] for p in parsed)
        out = {"rps": requests / (time.monotonic() - t0), "resumed_share": round(resumed / max(1, requests), 3)}
    cpu = run_seconds(pids) - cpu0
    wall = time.monotonic() - t0
    if not target.child.alive():
        raise RuntimeError(f"{target.case} died during the run:\n{target.child.log_tail()}")
    return {
        **out,
        "requests": requests,
        "errors": errors,
        "proxy_cpu_s": round(cpu, 4),
        "proxy_busy": round(cpu / wall, 3),  # share of its core the proxy used
        "per_core": requests / cpu if cpu > 0 else None,  # requests per CPU second of the proxy
    }


def start_openssl_speed(plan: CpuPlan, seconds: int) -> subprocess.Popen:
    """`openssl speed` on the proxy's CPU: sign operations per second of one core, RSA 2048 and ECDSA P-256."""
    cmd = plan.on_proxy(["openssl", "speed", "-seconds", str(seconds), "rsa2048", "ecdsap256"])
    return subprocess.Popen(bounded(cmd, 4 * seconds + 60), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def openssl_speed_result(proc: subprocess.Popen, seconds: int) -> dict[str, float]:
    out, _ = proc.communicate(timeout=4 * seconds + 60)
    return parse_openssl_speed(out)


def parse_openssl_speed(out: str) -> dict[str, float]:
    """Sign operations per second in `openssl speed rsa2048 ecdsap256`'s table."""
    rsa = re.search(r"^rsa 2048 bits\s+\S+\s+\S+\s+([\d.]+)", out, re.M)
    ec = re.search(r"^\s*256 bits ecdsa \(nistp256\)\s+\S+\s+\S+\s+([\d.]+)", out, re.M)
    if not rsa or not ec:
        raise RuntimeError(f"cannot read openssl speed's output:\n{out}")
    return {"rsa": float(rsa.group(1)), "ec": float(ec.group(1))}


def run_bench(opts: Options) -> dict[str, Any]:
    require_tools(
        ("wrk", "haproxy", "nginx", "openssl", "taskset"), "apt-get install -y wrk haproxy nginx-light openssl util-linux"
    )
    plan = CpuPlan.choose()
    started = utc_now()
    runs: list[dict[str, Any]] = []
    speed = start_openssl_speed(plan, opts.speed_seconds)
    # before the proxies start, alone on their CPU; the smoke run does not wait (its figures mean nothing)
    speeds = [] if opts.smoke else [openssl_speed_result(speed, opts.speed_seconds)]
    with (
        tempfile.TemporaryDirectory(prefix="pacslb-proxy-bench-") as tmpname,
        running(opts, plan, Path(tmpname)) as (
            targets,
            _files,
            rs,
        ),
    ):
        if opts.smoke:
            speeds.append(openssl_speed_result(speed, opts.speed_seconds))
        opts.log(f"proxy CPU {plan.proxy}, rest CPU {plan.rest}; targets: " + ", ".join(targets))
        for lname in opts.loads:
            load = LOADS[lname]
            for c in opts.cases:
                if opts.warmup:
                    measure(targets[c], load, opts.warmup, plan)
            for rnd, pos, c in schedule(opts.cases, opts.rounds):
                data = measure(targets[c], load, opts.duration, plan)
                runs.append({"load": lname, "case": c, "round": rnd, "position": pos, **data})
                opts.log(
                    f"{lname:22} r{rnd} {c:15} {data['rps']:9.0f}/s  per core {fmt(data['per_core'], '9.0f')}"
                    f"  proxy busy {data['proxy_busy']:.0%}  errors {data['errors']}"
                )
        configs = {c: t.config for c, t in targets.items()}
        tails = {c: t.child.log_tail(20) for c, t in targets.items()}
    if not opts.smoke:  # a second figure, after the run: the machine is shared, its speed drifts
        speeds.append(openssl_speed_result(start_openssl_speed(plan, opts.speed_seconds), opts.speed_seconds))
    doc = {
        "benchmark": "proxy",
        "started": started.isoformat(timespec="seconds"),
        "finished": utc_now().isoformat(timespec="seconds"),
        "smoke": opts.smoke,
        "parameters": {
            "duration_s": opts.duration,
            "rounds": opts.rounds,
            "warmup_s": opts.warmup,
            "reuse_variant": opts.reuse,
            "proxy_cpu": plan.proxy,
            "rest_cpu": plan.rest,
            "handshake_clients": HANDSHAKE_CLIENTS,
            "loads": {name: {k: v for k, v in vars(LOADS[name]).items() if k != "name"} for name in opts.loads},
        },  # fmt: skip
        "machine": machine_info(),
        "versions": versions(),
        "openssl_speed": {"runs": speeds, "rsa": median(s["rsa"] for s in speeds), "ec": median(s["ec"] for s in speeds)},
        "cases": {c: CASES[c] for c in opts.cases},
        "configs": configs,
        "engine_output_tails": tails,
        "runs": runs,
    }
    doc["summary"] = summarize(runs, doc["openssl_speed"])
    return doc


# --- summary and report --------------------------------------------------------------------------


def summarize(runs: list[dict[str, Any]], speed: dict[str, Any]) -> dict[str, Any]:
    """Per load: each case's medians, and the ratios the goals name (per proxy core, paired within rounds)."""
    out: dict[str, Any] = {}
    for load in dict.fromkeys(r["load"] for r in runs):
        rs = [r for r in runs if r["load"] == load]
        cases: dict[str, Any] = {}
        for c in dict.fromkeys(r["case"] for r in rs):
            mine = [r for r in rs if r["case"] == c]
            cases[c] = {
                "rps": median(r["rps"] for r in mine),
                "per_core": median(r["per_core"] for r in mine),
                "cpu_us_per_req": median(1e6 / r["per_core"] if r["per_core"] else None for r in mine),
                "proxy_busy": median(r["proxy_busy"] for r in mine),
                "samples": len(mine),
                "requests": sum(r["requests"] for r in mine),
                "errors": sum(r["errors"] for r in mine),
            }
            if "resumed_share" in mine[0]:
                cases[c]["resumed_share"] = median(r["resumed_share"] for r in mine)
        ratios: dict[str, Any] = {}
        for num, den in (("rendered", "minimal"), ("rendered", "nginx"), ("rendered-reuse", "minimal"),
                         ("rendered-reuse", "nginx"), ("minimal", "nginx")):  # fmt: skip
            if num in cases and den in cases:
                per_round = []
                for rnd in sorted({r["round"] for r in rs}):
                    a = [r["per_core"] for r in rs if r["round"] == rnd and r["case"] == num]
                    b = [r["per_core"] for r in rs if r["round"] == rnd and r["case"] == den]
                    if a and b and a[0] and b[0]:
                        per_round.append(a[0] / b[0])
                ratios[f"{num}/{den}"] = {
                    "per_core": median(per_round),
                    "per_core_rounds": [round(x, 3) for x in per_round],
                    "rps": ratio(cases[num]["rps"], cases[den]["rps"]),
                }
        entry: dict[str, Any] = {"cases": cases, "ratios": ratios}
        key = LOADS[load].key if LOADS[load].kind == "handshake" else None
        if key:
            entry["sign_per_s"] = speed[key]
            entry["share_of_sign_rate"] = {c: ratio(v["per_core"], speed[key]) for c, v in cases.items()}
        out[load] = entry
    return out


def markdown_table(doc: dict[str, Any], results_name: str | None = None) -> str:
    p, v, m, sp = doc["parameters"], doc["versions"], doc["machine"], doc["openssl_speed"]
    lines = [
        f"Run {doc['started']}{' (--smoke)' if doc.get('smoke') else ''}"
        + (f", raw numbers in `bench/results/{results_name}`" if results_name else "")
        + ".",
        f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), Linux {m['kernel']}; {v['haproxy']}, nginx {v['nginx']}, "
        f"wrk {v['wrk']}, pacslb {v['pacslb']} ({v['git_commit'][:10]}{', uncommitted changes' if v['git_dirty'] else ''}).",
        f"Proxy on CPU {p['proxy_cpu']} (one thread / one worker), everything else on CPU {p['rest_cpu']}; "
        f"{p['duration_s']} s per measurement, {p['rounds']} interleaved round(s), medians; the machine was shared.",
        f"`openssl speed` on the proxy's CPU: RSA 2048 {sp['rsa']:,.0f} sign/s, ECDSA P-256 {sp['ec']:,.0f} sign/s "
        f"(each run, RSA/ECDSA: {', '.join(format(s['rsa'], ',.0f') + '/' + format(s['ec'], ',.0f') for s in sp['runs'])}).",
        "",
        "| workload | case | req/s (handshakes/s) | per proxy core | proxy CPU µs/req | proxy busy | errors |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for load, s in doc["summary"].items():
        for c, r in s["cases"].items():
            extra = f" ({r['resumed_share']:.0%} resumed)" if "resumed_share" in r else ""
            lines.append(
                f"| {load}{extra} | {c} | {fmt(r['rps'], ',.0f')} | {fmt(r['per_core'], ',.0f')} | "
                f"{fmt(r['cpu_us_per_req'], '.1f')} | {fmt(r['proxy_busy'], '.0%')} | {r['errors']} |"
            )
    lines += [
        "",
        "Per proxy core: requests (or handshakes) per second its processes ran on a CPU (schedstat).",
        "",
        f"| workload | rendered/minimal (>= {TARGET_RATIO_MINIMAL}) | rendered/nginx (>= {TARGET_RATIO_NGINX}) | "
        f"rendered-reuse/minimal | rendered-reuse/nginx | rendered share of sign rate (>= {TARGET_HANDSHAKE_SHARE}) |",
        "|---|---|---|---|---|---|",
    ]

    def cell(r: dict[str, Any] | None, target: float | None = None) -> str:
        if not r or r["per_core"] is None:
            return "-"
        mark = "" if target is None else (" ok" if r["per_core"] >= target else " **no**")
        rounds = ", ".join(f"{x:.2f}" for x in r["per_core_rounds"])
        return f"{r['per_core']:.3f}{mark} ({rounds})"

    for load, s in doc["summary"].items():
        rt = s["ratios"]
        share = s.get("share_of_sign_rate", {}).get("rendered")
        share_cell = "-" if share is None else f"{share:.2f}{' ok' if share >= TARGET_HANDSHAKE_SHARE else ' **no**'}"
        lines.append(
            f"| {load} | {cell(rt.get('rendered/minimal'), TARGET_RATIO_MINIMAL)} | "
            f"{cell(rt.get('rendered/nginx'), TARGET_RATIO_NGINX)} | {cell(rt.get('rendered-reuse/minimal'))} | "
            f"{cell(rt.get('rendered-reuse/nginx'))} | {share_cell} |"
        )
    lines += ["", "Ratios are per proxy core, the median of the per-round ratios (each round's values in brackets)."]
    return "\n".join(lines) + "\n"


# --- command line --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--smoke", action="store_true", help="under 30 s: 1 s per measurement, 1 round, 3 workloads; README untouched"
    )
    ap.add_argument("--duration", type=int, help="seconds per measurement (default 5, --smoke 1)")
    ap.add_argument("--rounds", type=int, help="interleaved rounds (default 3, --smoke 1)")
    ap.add_argument("--warmup", type=int, help="seconds of unrecorded load per case and workload (default 1, --smoke 0)")
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of " + ",".join(CASES))
    ap.add_argument("--loads", help="comma-separated subset of " + ",".join(LOADS))
    ap.add_argument("--reuse", default="always", choices=("never", "safe", "aggressive", "always"),
                    help="connection_reuse of the rendered-reuse case")  # fmt: skip
    ap.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    ap.add_argument(
        "--readme", type=Path, help="regenerate the results section of this file (default bench/README.md, not with --smoke)"
    )
    ap.add_argument("--report", type=Path, metavar="RESULTS_JSON", help="run nothing: print the table of a results file")
    return ap.parse_args(argv)


def _choices(text: str, known: dict, kind: str) -> tuple[str, ...]:
    chosen = tuple(x.strip() for x in text.split(",") if x.strip())
    unknown = [x for x in chosen if x not in known]
    if unknown or not chosen:
        raise SystemExit(f"unknown {kind}(s) {', '.join(unknown) or '(none)'}: choose from {', '.join(known)}")
    return chosen


def options_from(args: argparse.Namespace) -> Options:
    smoke = args.smoke
    duration = args.duration if args.duration is not None else (1 if smoke else 5)
    rounds = args.rounds if args.rounds is not None else (1 if smoke else 3)
    warmup = args.warmup if args.warmup is not None else (0 if smoke else 1)
    if not 0 < duration <= 60 or not 1 <= rounds <= 20 or not 0 <= warmup <= 10:
        raise SystemExit("bounds: 0 < duration <= 60, 1 <= rounds <= 20, 0 <= warmup <= 10")
    loads = _choices(args.loads, LOADS, "load") if args.loads else (SMOKE_LOADS if smoke else tuple(LOADS))
    return Options(duration=duration, rounds=rounds, warmup=warmup, cases=_choices(args.cases, CASES, "case"), loads=loads,
                   reuse=args.reuse, speed_seconds=1 if smoke else 3, smoke=smoke)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report is not None:
        doc = json.loads(args.report.read_text())
        table = markdown_table(doc, args.report.name)
        print(table)
        if args.readme:
            replace_section(args.readme, "proxy", table)
        return 0
    opts = options_from(args)
    doc = run_bench(opts)
    results = write_results(args.results_dir, f"{stamp(doc['started'])}-proxy.json", doc)
    table = markdown_table(doc, results.name)
    print()
    print(table)
    print(f"results: {results}")
    readme = args.readme or (None if opts.smoke else README)
    if readme is not None:
        replace_section(readme, "proxy", table)
        print(f"table written to {readme}")
    failed = sum(r["errors"] for r in doc["runs"])
    if failed:
        print(f"warning: {failed} socket errors or error statuses during the runs", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
