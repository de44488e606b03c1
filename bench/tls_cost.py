"""Where a TLS handshake's CPU goes (issue 17): the crypto floor, OpenSSL alone, and the proxy's front side alone.

    .venv/bin/python bench/tls_cost.py            # 3 interleaved rounds of 4 s per case: about 3 minutes
    .venv/bin/python bench/tls_cost.py --smoke    # 1 round of 1 s: under a minute; README untouched
    .venv/bin/python bench/tls_cost.py --report bench/results/X-tls-cost.json [--readme F]

bench/proxy.py measures full handshakes through pacslb's rendered configuration with a Python client that loads
the proxy's core a few percent; this script takes the cost of one handshake apart, on the proxy's CPU:

- the crypto floor: `openssl speed`'s ECDSA P-256 and RSA 2048 signatures and X25519 derivations. A full TLS 1.3
  handshake signs once and does one X25519 key generation and one derivation (the same scalar multiplication);
- OpenSSL alone: the server side of in-memory TLS 1.3 handshakes (Python's ssl over memory BIOs, Debian's
  libssl, the library HAProxy and nginx link): its thread CPU time per handshake, no sockets, no proxy;
- the front side alone: HAProxy with the TLS settings of pacslb's rendering (the `ssl-default-*` lines of
  bench/minimal-haproxy-tls.cfg.tmpl), the same with `ssl-default-bind-curves X25519:P-256`, and nginx, each with
  one thread on the last CPU; full handshakes from `openssl s_time -new` clients (C, no request) on the first
  CPU; the proxy's CPU (schedstat) per handshake. HAProxy's backend counts its connections: in HTTP mode a
  connection without a request never reaches a real server, so a handshake here is one handshake;
- re-encryption: a new connection with one request (`s_time -www`) through HAProxy to an nginx real server,
  plain, TLS (HAProxy's default: the server's session reused) and TLS with `no-ssl-reuse`; the real server
  logs whether each of its sessions was resumed.
- with `--profile`, once more HAProxy's front side with ECDSA under `perf record -e cpu-clock --call-graph dwarf`:
  the share of its CPU samples per library, and of a few exported OpenSSL functions with what they call.

Cases are interleaved (the order rotated each round); medians of the rounds. Writes
bench/results/<timestamp>-tls-cost.json and the section between ``<!-- results:tls-cost start -->`` and
``<!-- results:tls-cost end -->`` of bench/README.md. Loopback only; every child runs under timeout(1), dies
with this process, and is stopped by its PID in a finally block.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # bench/lib, the benchmarks' shared helpers
from lib.checkout import use_checkout  # noqa: E402

use_checkout(tests=False)

from lib.machine import machine_info, require_tools, versions  # noqa: E402
from lib.procfs import run_seconds  # noqa: E402
from lib.procs import Child, bounded, pinned, wait_until  # noqa: E402
from lib.report import fmt, replace_section, stamp, utc_now, write_results  # noqa: E402
from lib.rounds import rotated  # noqa: E402
from lib.stats import median, ratio  # noqa: E402

from pacslb import pki  # noqa: E402

NAME = "tls-cost"
README = HERE / "README.md"
RESULTS_DIR = HERE / "results"
MINIMAL_HAPROXY = HERE / "minimal-haproxy-tls.cfg.tmpl"
HOST = "127.0.0.1"
KEYS = ("ec", "rsa")
KEY_NAMES = {"ec": "ECDSA P-256", "rsa": "RSA 2048"}
FRONT_CASES = {
    "haproxy": "HAProxy 2.6, pacslb's TLS settings",
    "haproxy-curves": "the same with ssl-default-bind-curves X25519:P-256",
    "nginx": "nginx, the same ciphers, session cache, no tickets",
}
BACKENDS = {
    "plain": "HTTP to the real server",
    "tls": "HTTPS, verified, HAProxy's default session reuse",
    "tls-no-reuse": "HTTPS, verified, no-ssl-reuse",
}
CLIENTS = 2  # parallel openssl s_time processes
IN_MEMORY_HANDSHAKES = {"ec": 600, "rsa": 200}  # per round; a few tenths of a second each
TARGET_SHARE = 0.5  # the issue: handshakes per core >= 0.5 x openssl speed's sign rate
SPEED_ALGORITHMS = ("ecdsap256", "rsa2048", "ecdhx25519")
PROFILED = {  # exported functions whose share counts what they call (Debian's libcrypto keeps no other symbols)
    "EVP_PKEY_generate": "ephemeral key generation (X25519)",
    "EVP_DigestSignInit_ex": "signature: set-up (provider fetches)",
    "EVP_DigestSignFinal": "signature",
    "EVP_Q_mac": "MACs (HKDF key schedule, Finished)",
    "EVP_MD_fetch": "digest fetches from the provider",
    "EVP_KDF_fetch": "KDF fetches from the provider",
    "RAND_bytes_ex": "random bytes",
    "SSL_new": "SSL_new",
    "SSL_free": "SSL_free",
    "accept4": "accept",
    "epoll_wait": "epoll_wait",
}
PERF_LINE = re.compile(r"^\s*([\d.]+)%\s+(?:([\d.]+)%\s+)?(.+?)\s*$")


# --- the CPU split and the files ------------------------------------------------------------------


@dataclass(frozen=True)
class CpuPlan:
    """The proxy's CPU and the one the clients and real server share (None on a single-CPU machine)."""

    proxy: int | None
    rest: int | None

    @classmethod
    def choose(cls) -> "CpuPlan":
        cpus = sorted(os.sched_getaffinity(0))
        return cls(cpus[-1], cpus[0]) if len(cpus) >= 2 else cls(None, None)

    def on(self, cpu: int | None, cmd: list[str]) -> list[str]:
        return ["taskset", "-c", str(cpu), *cmd] if cpu is not None else cmd


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def make_certificates(tmp: Path) -> dict[str, Path]:
    """A CA and the VIP's ECDSA and RSA certificates, each with the CA in its chain, as bench/proxy.py's."""
    ca = pki.make_ca("pacslb bench CA")
    paths = {"ca": tmp / "ca.pem", "ec": tmp / "vip-ec.pem", "rsa": tmp / "vip-rsa.pem"}
    pki.write_pem(paths["ca"], ca.cert_pem)
    for key in KEYS:
        pki.write_pem(paths[key], pki.issue(ca, "bench VIP", [HOST, "localhost"], key_type=key).bundle(chain=[ca]), private=True)
    os.chmod(tmp, 0o755)
    return paths


def pacslb_tls_globals() -> list[str]:
    """The `ssl-default-*` lines of the minimal template: pacslb's rendered TLS settings (bench/proxy.py checks they match)."""
    lines = [line.strip() for line in MINIMAL_HAPROXY.read_text().splitlines() if line.strip().startswith("ssl-default-")]
    if not lines:
        raise RuntimeError(f"no ssl-default-* lines in {MINIMAL_HAPROXY}")
    return lines


def haproxy_config(port: int, cert: Path, backend: str, stats: Path, extra_globals: tuple[str, ...] = ()) -> str:
    """One TLS frontend (ALPN as rendered) and one backend server line; a stats socket; no logs, no checks."""
    globals_ = "".join(f"    {line}\n" for line in (f"stats socket {stats}", *pacslb_tls_globals(), *extra_globals))
    return (
        f"global\n    nbthread 1\n{globals_}\n"
        "defaults\n    mode http\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\n"
        f"frontend vip\n    bind {HOST}:{port} ssl crt {cert} alpn h2,http/1.1\n    default_backend servers\n\n"
        f"backend servers\n    server s1 {backend}\n"
    )


def nginx_config(prefix: Path, port: int, cert: Path) -> str:
    return f"""worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body; proxy_temp_path {prefix}/proxy; fastcgi_temp_path {prefix}/fcgi;
    uwsgi_temp_path {prefix}/uwsgi; scgi_temp_path {prefix}/scgi;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:VIP:10m;
    ssl_session_tickets off;
    server {{ listen {HOST}:{port} ssl; ssl_certificate {cert}; ssl_certificate_key {cert}; location / {{ return 200; }} }}
}}
"""


def real_server_config(prefix: Path, http_port: int, https_port: int, cert: Path) -> str:
    """The real server of the re-encryption part: logs `r` for a resumed TLS session, `.` otherwise."""
    return f"""worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    log_format resumed "$ssl_session_reused";
    access_log {prefix}/access.log resumed;
    client_body_temp_path {prefix}/body; proxy_temp_path {prefix}/proxy; fastcgi_temp_path {prefix}/fcgi;
    uwsgi_temp_path {prefix}/uwsgi; scgi_temp_path {prefix}/scgi;
    server {{ listen {HOST}:{http_port}; listen {HOST}:{https_port} ssl; ssl_certificate {cert}; ssl_certificate_key {cert};
             location / {{ return 200 "ok"; }} }}
}}
"""


# --- measurements ---------------------------------------------------------------------------------


def parse_openssl_speed(out: str) -> dict[str, float]:
    """Operations per second of `openssl speed ecdsap256 rsa2048 ecdhx25519`: sign rates and the X25519 derivation."""
    found = {
        "ec_sign": re.search(r"256 bits ecdsa \(nistp256\)\s+\S+\s+\S+\s+([\d.]+)", out),
        "rsa_sign": re.search(r"rsa 2048 bits\s+\S+\s+\S+\s+([\d.]+)", out),
        "x25519": re.search(r"253 bits ecdh \(X25519\)\s+\S+\s+([\d.]+)", out),
    }
    missing = [k for k, m in found.items() if m is None]
    if missing:
        raise RuntimeError(f"cannot read {', '.join(missing)} in openssl speed's output:\n{out}")
    return {k: float(m.group(1)) for k, m in found.items() if m is not None}


def openssl_speed(plan: CpuPlan, seconds: int) -> dict[str, float]:
    cmd = plan.on(plan.proxy, ["openssl", "speed", "-seconds", str(seconds), *SPEED_ALGORITHMS])
    out = subprocess.run(bounded(cmd, 20 * seconds + 30), capture_output=True, text=True, check=True).stdout
    return parse_openssl_speed(out)


def in_memory_server_us(cert: Path, handshakes: int) -> float:
    """Server-side thread CPU time of one full TLS 1.3 handshake over memory BIOs (no sockets), in µs.

    The server context is set as HAProxy's: session cache, no tickets (stateful TLS 1.3 tickets)."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert)
    server.options |= ssl.OP_NO_TICKET
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE  # the client's work is not measured
    spent = 0
    for _ in range(handshakes):
        c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
        c = client.wrap_bio(c_in, c_out, server_hostname="localhost")
        t = time.thread_time_ns()
        s = server.wrap_bio(s_in, s_out, server_side=True)
        spent += time.thread_time_ns() - t
        c_done = s_done = False
        for _ in range(8):  # a TLS 1.3 handshake is two flights each way
            if not c_done:
                try:
                    c.do_handshake()
                    c_done = True
                except ssl.SSLWantReadError:
                    pass
            s_in.write(c_out.read())
            t = time.thread_time_ns()
            if not s_done:
                try:
                    s.do_handshake()
                    s_done = True
                except ssl.SSLWantReadError:
                    pass
            spent += time.thread_time_ns() - t
            c_in.write(s_out.read())
            if c_done and s_done:
                break
        if not (c_done and s_done) or s.version() != "TLSv1.3":
            raise RuntimeError("in-memory handshake did not complete in TLS 1.3")
    return spent / handshakes / 1000


def in_memory(plan: CpuPlan, cert: Path, handshakes: int) -> float:
    """in_memory_server_us in a child process on the proxy's CPU."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--in-memory", str(cert), str(handshakes)]
    out = subprocess.run(bounded(cmd, 300), capture_output=True, text=True, check=True, preexec_fn=pinned(plan.proxy)).stdout
    return float(json.loads(out)["us"])


S_TIME_DONE = re.compile(r"(\d+) connections in [\d.]+ real seconds")


def s_time(plan: CpuPlan, port: int, seconds: int, www: bool) -> list[subprocess.Popen]:
    """CLIENTS `openssl s_time -new` processes on the clients' CPU: full handshakes (and one GET with `www`)."""
    cmd = ["openssl", "s_time", "-connect", f"{HOST}:{port}", "-new", "-time", str(seconds), *(["-www", "/"] if www else [])]
    return [
        subprocess.Popen(
            bounded(plan.on(plan.rest, cmd), seconds + 60), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(CLIENTS)
    ]


def parse_s_time(out: str) -> int | None:
    """The connections `openssl s_time` completed, None if it did not say (it failed)."""
    m = S_TIME_DONE.search(out)
    return int(m.group(1)) if m else None


def load(pids: list[int], plan: CpuPlan, port: int, seconds: int, www: bool) -> dict[str, Any]:
    """s_time against the port for `seconds`: connections, errors, the proxy's CPU per connection and busy share."""
    cpu0, t0 = run_seconds(pids), time.monotonic()
    outs = [p.communicate()[0] for p in s_time(plan, port, seconds, www)]
    cpu, wall = run_seconds(pids) - cpu0, time.monotonic() - t0
    counts = [parse_s_time(o) for o in outs]
    done = sum(c or 0 for c in counts)
    return {
        "connections": done,
        "errors": sum(c is None for c in counts),
        "wall_s": round(wall, 3),
        "proxy_cpu_s": round(cpu, 4),
        "us_per_connection": round(cpu / done * 1e6, 1) if done else None,
        "per_core": round(done / cpu) if cpu > 0 else None,
        "proxy_busy": round(cpu / wall, 3),
    }


def wait_listening(port: int, child: Child, timeout: float = 30.0) -> None:
    def up() -> bool:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited:\n{child.log_tail()}")
        try:
            socket.create_connection((HOST, port), 0.5).close()
            return True
        except OSError:
            return False

    if not wait_until(up, timeout):
        raise RuntimeError(f"{child.name} is not listening on {port}:\n{child.log_tail()}")


def start_proxy(
    case: str, key: str, certs: dict[str, Path], backend: str, plan: CpuPlan, tmp: Path, life: int
) -> tuple[Child, int]:
    port = free_port()
    work = tmp / f"{case}-{key}-{port}"
    work.mkdir()
    if case == "nginx":
        (work / "nginx.conf").write_text(nginx_config(work, port, certs[key]))
        cmd = ["nginx", "-p", str(work), "-c", str(work / "nginx.conf"), "-g", "daemon off; master_process off;"]
    else:
        extra = ("ssl-default-bind-curves X25519:P-256",) if case == "haproxy-curves" else ()
        (work / "haproxy.cfg").write_text(haproxy_config(port, certs[key], backend, work / "stats.sock", extra))
        cmd = ["haproxy", "-db", "-f", str(work / "haproxy.cfg")]
    child = Child(case, bounded(plan.on(plan.proxy, cmd), life), work / "log").start()
    wait_listening(port, child)
    return child, port


def backend_connections(stats_socket: Path) -> int:
    """The backend's total sessions (`show stat` stot of BACKEND servers)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(stats_socket))
        s.sendall(b"show stat\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    for line in data.decode().splitlines():
        fields = line.split(",")
        if fields[:2] == ["servers", "BACKEND"]:
            return int(fields[7])
    raise RuntimeError("no BACKEND line in show stat")


def proxy_pids(child: Child) -> list[int]:
    # timeout(1) -> taskset execs the proxy: the proxy is timeout's child (nginx without master: one process)
    return [p for p in child.pids() if p != child.pid]


def parse_perf_dso(out: str) -> dict[str, float]:
    """`perf report --no-children --sort dso`: the share of samples per library (percent)."""
    shares: dict[str, float] = {}
    for line in out.splitlines():
        m = PERF_LINE.match(line)
        if m and not line.lstrip().startswith("#"):
            shares[m.group(3)] = float(m.group(1))
    return shares


def parse_perf_children(out: str, names: Iterable[str]) -> dict[str, float]:
    """`perf report --children --sort sym`: the share of samples in each of these functions and what they call."""
    wanted, shares = set(names), {}
    for line in out.splitlines():
        m = PERF_LINE.match(line)
        if m and m.group(2) is not None:
            symbol = m.group(3).split("] ", 1)[-1].split(" (inlined)")[0].strip()
            if symbol in wanted and symbol not in shares:
                shares[symbol] = float(m.group(1))
    return shares


def profile(plan: CpuPlan, certs: dict[str, Path], tmp: Path, seconds: int, life: int) -> dict[str, Any]:
    """HAProxy's front side with ECDSA under perf: the load's figures, shares per library and per PROFILED function."""
    child, port = start_proxy("haproxy", "ec", certs, f"{HOST}:{free_port()}", plan, tmp, life)
    data = tmp / "perf.data"
    try:
        (pid,) = proxy_pids(child)
        perf = subprocess.Popen(bounded(["perf", "record", "-q", "-e", "cpu-clock", "-F", "2999", "--call-graph", "dwarf,16384",
                                         "-p", str(pid), "-o", str(data)], seconds + 60),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
        try:
            result = load([pid], plan, port, seconds, False)
        finally:
            perf.send_signal(signal.SIGINT)
            err = perf.communicate(timeout=60)[1]
    finally:
        child.stop()
    if not data.exists():
        raise RuntimeError(f"perf recorded nothing: {err.strip()}")

    def report(*args: str) -> str:
        cmd = ["perf", "report", "-i", str(data), "--stdio", "-g", "none", *args]
        return subprocess.run(bounded(cmd, 300), capture_output=True, text=True, check=True).stdout

    return {
        **result,
        "dso": parse_perf_dso(report("--no-children", "--sort", "dso")),
        "functions": parse_perf_children(report("--children", "--sort", "sym"), PROFILED),
    }


@dataclass(frozen=True)
class Options:
    duration: int
    rounds: int
    speed_seconds: int
    smoke: bool
    profile: bool = False


def run_bench(opts: Options) -> dict[str, Any]:
    require_tools(("haproxy", "nginx", "openssl", "taskset", "timeout"), "apt-get install -y haproxy nginx-light openssl")
    plan = CpuPlan.choose()
    started = utc_now()
    life = opts.duration + 120
    front: list[dict[str, Any]] = []
    reencrypt: list[dict[str, Any]] = []
    memory: list[dict[str, Any]] = []
    speeds = [openssl_speed(plan, opts.speed_seconds)]
    with tempfile.TemporaryDirectory(prefix="pacslb-tls-cost-") as d:
        tmp = Path(d)
        certs = make_certificates(tmp)
        http_port, https_port = free_port(), free_port()
        real_dir = tmp / "real"
        real_dir.mkdir()
        (real_dir / "nginx.conf").write_text(real_server_config(real_dir, http_port, https_port, certs["ec"]))
        real_cmd = ["nginx", "-p", str(real_dir), "-c", str(real_dir / "nginx.conf"), "-g", "daemon off; master_process off;"]
        real = Child("real server", bounded(plan.on(plan.rest, real_cmd), opts.rounds * 300 + 300), real_dir / "log").start()
        backends = {
            "plain": f"{HOST}:{http_port}",
            "tls": f"{HOST}:{https_port} ssl verify required ca-file {certs['ca']}",
            "tls-no-reuse": f"{HOST}:{https_port} ssl verify required ca-file {certs['ca']} no-ssl-reuse",
        }
        unused = f"{HOST}:{free_port()}"  # the handshake cases' backend: never connected to (counted)
        try:
            prof = profile(plan, certs, tmp, 2 * opts.duration, life) if opts.profile else None  # more samples
            wait_listening(https_port, real)
            for rnd in range(opts.rounds):
                for key in KEYS:
                    memory.append({"round": rnd, "key": key, "us": in_memory(plan, certs[key], IN_MEMORY_HANDSHAKES[key])})
                    for case in rotated(list(FRONT_CASES), rnd):
                        child, port = start_proxy(case, key, certs, unused, plan, tmp, life)
                        try:
                            r = {
                                "round": rnd,
                                "key": key,
                                "case": case,
                                **load(proxy_pids(child), plan, port, opts.duration, False),
                            }
                            if case != "nginx":
                                r["backend_connections"] = backend_connections(child.log.parent / "stats.sock")
                        finally:
                            child.stop()
                        front.append(r)
                        print(json.dumps(r), file=sys.stderr, flush=True)
                for backend in rotated(list(BACKENDS), rnd):
                    child, port = start_proxy("haproxy", "ec", certs, backends[backend], plan, tmp, life)
                    log = real_dir / "access.log"
                    log.write_text("")
                    try:
                        r = {"round": rnd, "backend": backend, **load(proxy_pids(child), plan, port, opts.duration, True)}
                    finally:
                        child.stop()
                    marks = log.read_text().split()
                    r["backend_connections"], r["backend_resumed"] = len(marks), marks.count("r")
                    reencrypt.append(r)
                    print(json.dumps(r), file=sys.stderr, flush=True)
        finally:
            real.stop()
    speeds.append(openssl_speed(plan, opts.speed_seconds))
    doc = {
        "bench": NAME,
        "started": started.isoformat(),
        "finished": utc_now().isoformat(),
        "machine": machine_info(),
        "versions": {**versions(("haproxy", "nginx")), "openssl": ssl.OPENSSL_VERSION},
        "parameters": {
            "duration_s": opts.duration,
            "rounds": opts.rounds,
            "clients": CLIENTS,
            "proxy_cpu": plan.proxy,
            "rest_cpu": plan.rest,
            "in_memory_handshakes": IN_MEMORY_HANDSHAKES,
        },  # fmt: skip
        "openssl_speed": {"runs": speeds, **{k: median(s[k] for s in speeds) for k in speeds[0]}},
        "in_memory": memory,
        "front": front,
        "reencrypt": reencrypt,
        **({"profile": prof} if prof is not None else {}),
    }
    doc["summary"] = summarize(doc)
    return doc


# --- summary and report ---------------------------------------------------------------------------


def floor_us(speed: dict[str, float], key: str) -> float:
    """The crypto of a full TLS 1.3 handshake with (EC)DHE X25519: one signature, one key generation and one
    derivation (each one X25519 scalar multiplication, `openssl speed` times the derivation)."""
    return 1e6 / speed[f"{key}_sign"] + 2 * 1e6 / speed["x25519"]


def summarize(doc: dict[str, Any]) -> dict[str, Any]:
    """Per key: the floor, OpenSSL alone, and each front case (medians), each as µs, per core and share of the sign rate."""
    speed = doc["openssl_speed"]
    out: dict[str, Any] = {"keys": {}, "reencrypt": {}}
    for key in KEYS:
        sign = speed[f"{key}_sign"]
        rows: dict[str, float | None] = {"sign": 1e6 / sign, "floor": floor_us(speed, key)}
        rows["openssl-in-memory"] = median(m["us"] for m in doc["in_memory"] if m["key"] == key)
        for case in FRONT_CASES:
            rows[case] = median(r["us_per_connection"] for r in doc["front"] if r["key"] == key and r["case"] == case)
        out["keys"][key] = {
            "sign_per_s": sign,
            "us": rows,
            "per_core": {k: (round(1e6 / v) if v else None) for k, v in rows.items()},
            "share_of_sign_rate": {k: ratio(1e6 / v, sign) if v else None for k, v in rows.items()},
            "busy": {c: median(r["proxy_busy"] for r in doc["front"] if r["key"] == key and r["case"] == c) for c in FRONT_CASES},
            "backend_connections": sum(r.get("backend_connections", 0) for r in doc["front"] if r["key"] == key),
        }
    for backend in BACKENDS:
        runs = [r for r in doc["reencrypt"] if r["backend"] == backend]
        out["reencrypt"][backend] = {
            "us": median(r["us_per_connection"] for r in runs),
            "busy": median(r["proxy_busy"] for r in runs),
            "backend_connections": sum(r["backend_connections"] for r in runs),
            "backend_resumed": sum(r["backend_resumed"] for r in runs),
        }
    return out


def section(doc: dict[str, Any], results_name: str | None = None) -> str:
    s, sp, m, v, p = doc["summary"], doc["openssl_speed"], doc["machine"], doc["versions"], doc["parameters"]
    lines = [
        f"Run {doc['started']}" + (f", raw numbers in `bench/results/{results_name}`." if results_name else "."),
        f"Machine: {m['affinity']} CPUs ({m['cpu_model']}), Linux {m['kernel']}; {v.get('haproxy', '?')}, nginx {v.get('nginx', '?')}, "
        f"{v['openssl']}. Proxy on CPU {p['proxy_cpu']}, {p['clients']} `openssl s_time` clients on CPU {p['rest_cpu']}; "
        f"{p['duration_s']} s per measurement, {p['rounds']} interleaved round(s), medians; the machine was shared.",
        f"`openssl speed` on the proxy's CPU: ECDSA P-256 {sp['ec_sign']:,.0f} sign/s, RSA 2048 {sp['rsa_sign']:,.0f} sign/s, "
        f"X25519 {sp['x25519']:,.0f} derivations/s.",
        "",
        "| full TLS 1.3 handshake, server side | key | CPU µs per handshake | per core | share of the sign rate (>= 0.5) | proxy busy |",
        "|---|---|---:|---:|---:|---:|",
    ]
    labels = {
        "sign": "the signature alone (`openssl speed`)",
        "floor": "crypto floor: signature + X25519 key generation + derivation",
        "openssl-in-memory": "OpenSSL alone, in memory (no sockets, no proxy)",
        **{c: f"{d}, front side alone" for c, d in FRONT_CASES.items()},
    }
    for key in KEYS:
        k = s["keys"][key]
        for row, label in labels.items():
            share = k["share_of_sign_rate"][row]
            mark = "" if share is None or row == "sign" else (" ok" if share >= TARGET_SHARE else " **no**")
            busy = k["busy"].get(row)
            lines.append(f"| {label} | {KEY_NAMES[key]} | {fmt(k['us'][row], ',.0f')} | {fmt(k['per_core'][row], ',')} | "
                         f"{fmt(share, '.2f')}{mark} | {'-' if busy is None else f'{busy:.0%}'} |")  # fmt: skip
    conns = sum(s["keys"][k]["backend_connections"] for k in KEYS)
    lines += [
        "",
        f"Connections HAProxy's backend made during the handshake runs: {conns} (a handshake without a request reaches no real server).",
        "",
        "| a new connection with one request, ECDSA | proxy CPU µs per connection | backend TLS sessions resumed | proxy busy |",
        "|---|---:|---:|---:|",
    ]
    for backend, label in BACKENDS.items():
        r = s["reencrypt"][backend]
        resumed = "-" if backend == "plain" else f"{r['backend_resumed']:,} of {r['backend_connections']:,}"
        busy = "-" if r["busy"] is None else f"{r['busy']:.0%}"
        lines.append(f"| {label} | {fmt(r['us'], ',.0f')} | {resumed} | {busy} |")
    if "profile" in doc:
        lines += ["", *profile_lines(doc["profile"])]
    return "\n".join(lines) + "\n"


def profile_lines(prof: dict[str, Any]) -> list[str]:
    us = prof["us_per_connection"] or 0.0
    libraries = ", ".join(
        f"{name} {share:.1f} %" for name, share in sorted(prof["dso"].items(), key=lambda kv: -kv[1]) if share >= 0.5
    )
    lines = [
        f"Profile (`--profile`): HAProxy's front side, ECDSA, {prof['connections']:,} handshakes, {us:,.0f} µs each, "
        f"proxy {prof['proxy_busy']:.0%} busy (perf's sampling adds to it). CPU samples per library: {libraries}.",
        "",
        "| exported function, with what it calls | share of the samples | µs per handshake |",
        "|---|---:|---:|",
    ]
    for name, label in PROFILED.items():
        share = prof["functions"].get(name)
        if share is not None:
            lines.append(f"| `{name}`: {label} | {share:.1f} % | {share / 100 * us:,.0f} |")
    return lines


# --- command line ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="1 round of 1 s per case: under a minute; README untouched")
    ap.add_argument("--duration", type=int, help="seconds per measurement (default 4, --smoke 1), at most 30")
    ap.add_argument("--rounds", type=int, help="interleaved rounds (default 3, --smoke 1), at most 10")
    ap.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    ap.add_argument("--readme", type=Path, help="write the section to this file (default bench/README.md, not with --smoke)")
    ap.add_argument("--report", type=Path, metavar="RESULTS_JSON", help="measure nothing: print the section of a results file")
    ap.add_argument("--profile", action="store_true", help="also profile HAProxy's front side with perf (needs perf)")
    ap.add_argument("--in-memory", nargs=2, metavar=("CERT", "N"), help=argparse.SUPPRESS)  # the child of in_memory()
    return ap.parse_args(argv)


def options_from(args: argparse.Namespace) -> Options:
    duration = args.duration if args.duration is not None else (1 if args.smoke else 4)
    rounds = args.rounds if args.rounds is not None else (1 if args.smoke else 3)
    if not 0 < duration <= 30 or not 1 <= rounds <= 10:
        raise SystemExit("bounds: 0 < --duration <= 30, 1 <= --rounds <= 10")
    if args.profile and shutil.which("perf") is None:
        raise SystemExit("--profile needs perf (Debian: apt-get install -y linux-perf)")
    return Options(duration=duration, rounds=rounds, speed_seconds=1, smoke=args.smoke, profile=args.profile)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.in_memory:
        print(json.dumps({"us": in_memory_server_us(Path(args.in_memory[0]), int(args.in_memory[1]))}))
        return 0
    if args.report is not None:
        text = section(json.loads(args.report.read_text()), args.report.name)
        print(text)
        if args.readme:
            replace_section(args.readme, NAME, text)
        return 0
    opts = options_from(args)
    doc = run_bench(opts)
    results = write_results(args.results_dir, f"{stamp(doc['started'])}-{NAME}.json", doc)
    text = section(doc, results.name)
    print(text)
    print(f"results: {results}", file=sys.stderr)
    readme = args.readme or (None if opts.smoke else README)
    if readme is not None:
        replace_section(readme, NAME, text)
        print(f"section written to {readme}", file=sys.stderr)
    failed = sum(r["errors"] for r in doc["front"] + doc["reencrypt"])
    if failed:
        print(f"warning: {failed} s_time clients failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
