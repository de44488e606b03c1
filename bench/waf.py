"""The WAF tier's cost (issue 18): requests per second and CPU per request through pacslb's WAF against the same
service without it, for a QIDO-RS query, a WADO-RS frame of 512 KiB and a STOW-RS upload of 100 MiB, at paranoia 1
and 2 (the PACS profile, block mode).

    .venv/bin/python bench/waf.py            # 10 s per measurement, 3 rounds, 3 uploads each: about 5 minutes
    .venv/bin/python bench/waf.py --quick    # a smoke run: 1 s, 1 round, one 8 MiB upload (tests/bench)

One `pacslb up` with three layer7-http services in front of one nginx origin (loopback): `direct` (no WAF), `pl1`
and `pl2`. wrk loads QIDO and WADO; a Python client streams the STOW-RS uploads. CPU is the user + system time of
HAProxy and Apache (every process of each) over the measurement, divided by the requests. The rounds rotate the
order of the services, so that the machine's other load falls on all of them alike. Results: bench/results/ and
the `waf` section of bench/README.md. Every process started here is stopped by PID.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from lib.machine import machine_info  # noqa: E402 - bench's helpers, importable once bench/ is on the path
from lib.procfs import cpu_seconds  # noqa: E402 - same
from lib.report import fmt, replace_section, stamp, utc_now, write_results  # noqa: E402 - same
from lib.stats import median  # noqa: E402 - same
from lib.wrk import Workload, parse_wrk, wrk_command  # noqa: E402 - same

from pacslb.engines.waf.paths import WafPaths  # noqa: E402 - kept beside the imports it follows
from support.appliance import Appliance  # noqa: E402 - the tests' harness, importable once tests/ is on the path
from support.dicomweb import FRAMES_ACCEPT, stow_body  # noqa: E402 - same
from support.net import free_port  # noqa: E402 - same
from support.processes import processes_of  # noqa: E402 - same

SERVICES = ("direct", "pl1", "pl2")
POLICY = {"direct": None, "pl1": "{mode: block, profile: pacs}", "pl2": "{mode: block, profile: pacs, paranoia_level: 2}"}
QIDO = "/dicom-web/studies?PatientName=O%27Brien*&StudyDate=20240101-20241231&ModalitiesInStudy=CT&limit=25"
FRAME = "/dicom-web/studies/1.2.840.1/series/1.2.840.2/instances/1.2.840.3/frames/1"
FRAME_BYTES = 512 * 1024


def nginx_conf(root: Path, port: int) -> str:
    return f"""daemon off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    client_max_body_size 0;
    server {{
        listen 127.0.0.1:{port};
        location = /dicom-web/studies {{
            if ($request_method = POST) {{ return 200 '{{"stored": true}}'; }}
            default_type application/dicom+json;
            alias {root}/qido.json;
        }}
        location ~ /frames/ {{ default_type application/octet-stream; root {root}; try_files /frame.bin =404; }}
    }}
}}
"""


def start_origin(root: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    (root / "qido.json").write_text(
        '[{"00100010": {"vr": "PN", "Value": [{"Alphabetic": "O\'Brien^Mary"}]}, "0020000D": {"vr": "UI", "Value": ["1.2.3"]}}]'
    )
    (root / "frame.bin").write_bytes(b"\x5a" * FRAME_BYTES)
    (root / "nginx.conf").write_text(nginx_conf(root, port))
    origin = subprocess.Popen(["nginx", "-c", str(root / "nginx.conf"), "-p", str(root)], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return origin, port
        except OSError:
            time.sleep(0.05)
    origin.kill()
    raise RuntimeError("nginx did not start")


def config(vips: dict[str, int], origin_port: int) -> str:
    lines = [
        "version: 1",
        f"settings: {{health: {{agent_port: {free_port()}}}, management: {{address: 127.0.0.1, port: 0}}, "
        f"waf: {{first_port: {free_ports(2)}}}, threads: 1}}",
        "virtual_services:",
    ]
    for name in SERVICES:
        lines += [f"  - name: {name}", "    mode: layer7-http", f"    listen: [{{address: 127.0.0.1, port: {vips[name]}}}]",
                  "    health_check: {type: none}",
                  f"    real_servers: [{{name: origin, address: 127.0.0.1, port: {origin_port}}}]"]  # fmt: skip
        if POLICY[name]:
            lines.append(f"    waf: {POLICY[name]}")
    return "\n".join(lines) + "\n"


def free_ports(count: int) -> int:
    """The first of `count` consecutive free loopback ports (one per WAF policy)."""
    from pacslb.engines.waf.process import port_free

    for _ in range(50):
        first = free_port()
        if first + count < 65535 and all(port_free(first + i) for i in range(count)):
            return first
    raise RuntimeError(f"no {count} consecutive free ports")


def engine_pids(state_dir: Path) -> list[int]:
    """HAProxy's and Apache's processes of this state directory (not the controller: it is idle here)."""
    controller = set(processes_of(str(state_dir / "controller")))
    found = set(processes_of(str(state_dir / "haproxy"))) | set(processes_of(str(WafPaths(state_dir).config)))
    return sorted(found - controller)


def measure_wrk(port: int, path: str, headers: list[str], seconds: int, state_dir: Path) -> dict:
    workload = Workload("w", path, 10, False, "")
    cmd = wrk_command(f"http://127.0.0.1:{port}{path}", workload, seconds)
    for header in headers:
        cmd[1:1] = ["-H", header]
    pids = engine_pids(state_dir)
    before = cpu_seconds(pids)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    cpu = cpu_seconds(pids) - before
    report = parse_wrk(done.stdout)
    requests = max(report["requests"], 1)
    non2xx = report.get("errors", {}).get("status", 0)
    return {"rps": report["rps"], "cpu_ms_per_request": 1000 * cpu / requests, "requests": report["requests"],
            "socket_errors": report["socket_errors"], "non_2xx": non2xx}  # fmt: skip


def measure_stow(port: int, size: int, count: int, state_dir: Path) -> dict:
    pids = engine_pids(state_dir)
    before = cpu_seconds(pids)
    seconds, statuses = [], []
    for _ in range(count):
        length, chunks = stow_body(size, "bench-boundary")
        with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
            started = time.monotonic()
            sock.sendall(
                (f"POST /dicom-web/studies HTTP/1.1\r\nHost: pacs\r\nUser-Agent: bench\r\nContent-Length: {length}\r\n"
                 'Content-Type: multipart/related; type="application/dicom"; boundary=bench-boundary\r\n'
                 "Connection: close\r\n\r\n").encode()
            )  # fmt: skip
            for chunk in chunks:
                sock.sendall(chunk)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            seconds.append(time.monotonic() - started)
            statuses.append(int(answer[9:12]) if answer[:5] == b"HTTP/" else None)
    cpu = cpu_seconds(pids) - before
    return {"seconds": median(seconds), "mib_per_s": size / (1 << 20) / median(seconds), "cpu_ms_per_upload": 1000 * cpu / count,
            "statuses": statuses}  # fmt: skip


def run(seconds: int, rounds: int, stow_mib: int, uploads: int) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="pacslb-waf-bench-"))
    workdir.chmod(0o755)  # nginx's worker (nobody) reads the answers from here
    origin, origin_port = start_origin(workdir)
    vips = {name: free_port() for name in SERVICES}
    (workdir / "pacslb.yaml").write_text(config(vips, origin_port))
    state_dir = Path(tempfile.mkdtemp(prefix="pacslb-wb-", dir="/tmp")) / "state"
    appliance = Appliance(state_dir=state_dir, config=workdir / "pacslb.yaml", log=workdir / "pacslb-up.log")
    results: dict[str, dict[str, list[dict]]] = {s: {"qido": [], "wado": [], "stow": []} for s in SERVICES}
    try:
        appliance.up(wait=False)
        appliance.wait_healthy(timeout=120)
        for number in range(rounds):
            order = SERVICES[number % 3 :] + SERVICES[: number % 3]  # rotated: each service goes first once
            for service in order:
                port = vips[service]
                results[service]["qido"].append(measure_wrk(port, QIDO, ["Accept: application/dicom+json"], seconds, state_dir))
                results[service]["wado"].append(measure_wrk(port, FRAME, [f"Accept: {FRAMES_ACCEPT}"], seconds, state_dir))
                results[service]["stow"].append(measure_stow(port, stow_mib << 20, uploads, state_dir))
    finally:
        try:
            appliance.remember_pids()
            appliance.stop(timeout=15)
        finally:
            appliance.kill_leftovers()
            origin.terminate()
            try:
                origin.wait(timeout=10)
            except subprocess.TimeoutExpired:
                origin.kill()
            shutil.rmtree(state_dir.parent, ignore_errors=True)
            shutil.rmtree(workdir, ignore_errors=True)
    summary = {}
    for service, kinds in results.items():
        summary[service] = {
            "qido_rps": median([r["rps"] for r in kinds["qido"]]),
            "qido_cpu_ms": median([r["cpu_ms_per_request"] for r in kinds["qido"]]),
            "wado_rps": median([r["rps"] for r in kinds["wado"]]),
            "wado_cpu_ms": median([r["cpu_ms_per_request"] for r in kinds["wado"]]),
            "stow_mib_per_s": median([r["mib_per_s"] for r in kinds["stow"]]),
            "stow_cpu_ms": median([r["cpu_ms_per_upload"] for r in kinds["stow"]]),
            "errors": sum(r["socket_errors"] + r["non_2xx"] for k in ("qido", "wado") for r in kinds[k])
            + sum(s != 200 for r in kinds["stow"] for s in r["statuses"]),
        }
    return {"seconds": seconds, "rounds": rounds, "stow_mib": stow_mib, "uploads": uploads, "raw": results, "summary": summary}


def table(doc: dict) -> str:
    s = doc["summary"]
    d = s["direct"]
    lines = [
        f"{doc['rounds']} rounds of {doc['seconds']} s (wrk -t1 -c10, keep-alive), {doc['uploads']} STOW-RS uploads of "
        f"{doc['stow_mib']} MiB per round; medians. CPU: HAProxy + Apache, per request (per upload for STOW-RS).",
        "",
        "| service | QIDO req/s | QIDO CPU ms/req | WADO 512 KiB req/s | WADO CPU ms/req | STOW MiB/s | STOW CPU ms/upload | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in SERVICES:
        r = s[name]
        lines.append(f"| {name} | {fmt(r['qido_rps'], '.0f')} | {fmt(r['qido_cpu_ms'], '.3f')} | {fmt(r['wado_rps'], '.0f')} | "
                     f"{fmt(r['wado_cpu_ms'], '.3f')} | {fmt(r['stow_mib_per_s'], '.0f')} | {fmt(r['stow_cpu_ms'], '.0f')} | {r['errors']} |")  # fmt: skip
    for name in ("pl1", "pl2"):
        r = s[name]
        lines.append("")
        lines.append(
            f"{name}: the WAF adds {r['qido_cpu_ms'] - d['qido_cpu_ms']:.3f} ms of CPU per QIDO request (goal <= 1 ms); "
            f"WADO throughput {100 * r['wado_rps'] / d['wado_rps']:.0f} % and STOW-RS throughput "
            f"{100 * r['stow_mib_per_s'] / d['stow_mib_per_s']:.0f} % of the service without it (goal >= 90 %)."
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 s per measurement, 1 round, one 8 MiB upload")
    parser.add_argument("--no-readme", action="store_true", help="leave bench/README.md as it is")
    parser.add_argument("--results", type=Path, default=HERE / "results", help="where the results file goes")
    args = parser.parse_args()
    seconds, rounds, stow_mib, uploads = (1, 1, 8, 1) if args.quick else (10, 3, 100, 3)
    started = utc_now()
    doc = {
        "benchmark": "waf",
        "started": started.isoformat(),
        "machine": machine_info(),
        **run(seconds, rounds, stow_mib, uploads),
    }
    path = write_results(args.results, f"{stamp(started)}-waf.json", doc)
    text = table(doc)
    print(text + f"\nresults: {path}")
    if not args.no_readme and not args.quick:
        replace_section(HERE / "README.md", "waf", text)


if __name__ == "__main__":
    main()
