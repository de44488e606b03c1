#!/usr/bin/env python3
"""Which default of the rendered HAProxy configuration costs what: a diagnostic for bench/run.py.

    .venv/bin/python bench/ablate.py [--duration 5] [--rounds 3] [--workloads small-keepalive,small-close]

Renders case (b) of bench/run.py with pacslb's renderer, then runs, side by side on the same
demo real servers:

  minimal       case (c), bench/minimal-haproxy.cfg.tmpl
  rendered      case (b), the rendered file as it is
  -<feature>    the rendered file with one feature taken out (only the features it contains)
  -all          the rendered file with every one of those features taken out
  ~<change>     the rendered file with one thing changed (dontlog-normal, log to a ring, http-reuse always)

Each measurement round runs every variant once (order rotated per round); the report gives the
median req/s, the proxy's CPU time per request and each variant's ratio to minimal (the median
over rounds of the ratio within a round). The CPU time per request is the sensitive number: on
2 cores the demo real servers bound req/s, so a costly feature shows in CPU before it shows in
req/s. Writes bench/results/<timestamp>-ablate.json.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench
from lib.engines import haproxy_check
from lib.machine import machine_info, versions
from lib.procs import Child
from lib.report import stamp, utc_now, write_results
from lib.rounds import rotated

from pacslb.demo import DemoProcess, demo_spec_for


def _drop_lines(pattern: str) -> Callable[[str], str]:
    rx = re.compile(pattern)
    return lambda cfg: "\n".join(line for line in cfg.splitlines() if not rx.search(line)) + "\n"


def _drop_server_words(*words: str) -> Callable[[str], str]:
    """Remove keywords (with their argument when they take one) from `server` and `default-server` lines."""

    def edit(cfg: str) -> str:
        out = []
        for line in cfg.splitlines():
            if re.match(r"^\s*(server|default-server)\s", line):
                for w in words:  # "inter+": the keyword takes one argument
                    name = re.escape(w.rstrip("+"))
                    line = re.sub(rf"\s{name}\s+\S+" if w.endswith("+") else rf"\s{name}(?=\s|$)", "", line)
            if line.strip() != "default-server":  # nothing left on it
                out.append(line)
        return "\n".join(out) + "\n"

    return edit


def _compose(*edits: Callable[[str], str]) -> Callable[[str], str]:
    def edit(cfg: str) -> str:
        for e in edits:
            cfg = e(cfg)
        return cfg

    return edit


# (name, what it takes out, edit). A variant runs only if its edit changes the rendered text.
FEATURES: list[tuple[str, str, Callable[[str], str]]] = [
    (
        "-httplog",
        "option httplog / log-format / option dontlognull",
        _drop_lines(r"^\s*(option\s+(httplog|tcplog|dontlognull)|log-format|error-log-format)\b"),
    ),
    ("-log", "every `log` line (and the HTTP log format)", _drop_lines(r"^\s*(log\s|option\s+(httplog|tcplog)|log-format)")),
    ("-forwardfor", "option forwardfor", _drop_lines(r"^\s*option\s+forwardfor\b")),
    (
        "-checks",
        "health checks (check on servers, option httpchk, http-check)",
        _compose(
            _drop_lines(r"^\s*(option\s+httpchk|http-check)\b"), _drop_server_words("check", "inter+", "fall+", "rise+", "port+")
        ),
    ),
    ("-http-reuse", "http-reuse", _drop_lines(r"^\s*http-reuse\b")),
    ("-stick", "stick tables and stick rules", _drop_lines(r"^\s*(stick-table|stick\s|stick\s+on|stick\s+match|stick\s+store)")),
    (
        "-http-rules",
        "http-request / http-response / http-after-response rules",
        _drop_lines(r"^\s*(http-request|http-response|http-after-response)\b"),
    ),
    ("-maxconn", "maxconn lines", _drop_lines(r"^\s*maxconn\b")),
    (
        "-redispatch-retries",
        "option redispatch / retries / retry-on",
        _drop_lines(r"^\s*(option\s+redispatch|retries|retry-on)\b"),
    ),
    (
        "-server-state",
        "server-state-file / load-server-state-from-file",
        _drop_lines(r"^\s*(server-state-file|load-server-state-from-file)\b"),
    ),
    ("-stats", "stats socket / stats lines / prometheus", _drop_lines(r"^\s*(stats\s|.*prometheus-exporter)")),
    ("-tune", "tune.* lines", _drop_lines(r"^\s*tune\.")),
    (
        "-http-server-close",
        "option http-server-close / httpclose / forceclose",
        _drop_lines(r"^\s*option\s+(http-server-close|httpclose|forceclose)\b"),
    ),
    ("-abortonclose", "option abortonclose", _drop_lines(r"^\s*option\s+abortonclose\b")),
    ("-unique-id", "unique-id-format / unique-id-header", _drop_lines(r"^\s*unique-id-(format|header)\b")),
    ("-capture", "capture / declare capture lines", _drop_lines(r"^\s*(capture|declare\s+capture)\b")),
]


def _add_to_defaults(*lines: str) -> Callable[[str], str]:
    def edit(cfg: str) -> str:
        return re.sub(r"^defaults\b.*$", lambda m: m.group(0) + "".join(f"\n    {x}" for x in lines), cfg, count=1, flags=re.M)

    return edit


def _log_to_ring(cfg: str) -> str:
    """Log into an in-memory ring (read with `show events pacslb_log` on the stats socket) instead of stdout."""
    rx = re.compile(r"^(\s*)log\s+stdout\s+format\s+raw\s+(.*)$", re.M)
    if not rx.search(cfg):
        return cfg
    cfg = rx.sub(r"\1log ring@pacslb_log \2", cfg)
    return cfg.rstrip("\n") + "\n\nring pacslb_log\n    format raw\n    size 1048576\n"


# Alternatives ("~name"): the rendered file with one thing changed rather than taken out; not part of -all.
ALTERNATIVES: list[tuple[str, str, Callable[[str], str]]] = [
    (
        "~dontlog-normal",
        "adds option dontlog-normal: log only errors, timeouts, retries and 5xx",
        _add_to_defaults("option dontlog-normal"),
    ),
    ("~log-ring", "log to an in-memory ring instead of stdout", _log_to_ring),
    (
        "~reuse-always",
        "http-reuse always instead of safe",
        lambda cfg: re.sub(r"^(\s*)http-reuse\s+\w+", r"\1http-reuse always", cfg, flags=re.M),
    ),
]


def variants_for(rendered: str) -> list[tuple[str, str, str]]:
    """(name, description, config text) for every feature the rendered file holds, then -all, then alternatives."""
    out = []
    all_text = rendered
    for name, desc, edit in FEATURES:
        text = edit(rendered)
        if text.strip() != rendered.strip():
            out.append((name, desc, text))
            all_text = edit(all_text)
    if len(out) > 1:
        out.append(("-all", "every feature above", all_text))
    for name, desc, edit in ALTERNATIVES:
        text = edit(rendered)
        if text.strip() != rendered.strip():
            out.append((name, desc, text))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="nbthread of every variant; 0: the CPU count")
    ap.add_argument("--workloads", default="small-keepalive,small-close")
    ap.add_argument("--only", default="", help="comma-separated variant names to keep (besides minimal and rendered)")
    ap.add_argument("--results-dir", type=Path, default=bench.RESULTS_DIR)
    args = ap.parse_args(argv)
    if not 1 <= args.duration <= 60 or not 1 <= args.rounds <= 30:
        raise SystemExit("bounds: 1 <= duration <= 60, 1 <= rounds <= 30")
    workloads = [bench.WORKLOADS[w] for w in args.workloads.split(",") if w]
    threads = args.threads or os.cpu_count() or 1
    started = utc_now()
    runs: list[dict[str, Any]] = []
    children: list[Child] = []
    spec = demo_spec_for([(bench.DEMO_SERVICE, 0, "http")], replicas=2, second_octet=bench.DEMO_SECOND_OCTET)
    with tempfile.TemporaryDirectory(prefix="pacslb-ablate-") as tmpname:
        tmp = Path(tmpname)
        demo = DemoProcess(spec, max_lifetime=3600, stderr=subprocess.DEVNULL)
        try:
            demo.start()
            servers = [(r["address"], r["port"]) for r in demo.ready["services"][0]["replicas"]]
            port = bench.free_port()
            rendered = bench.render_rendered(bench.bench_config_data(port, servers), tmp / "state", threads)
            listen = f"{bench.VIP_ADDRESS}:{port}"
            minimal = bench.render_template(
                bench.MINIMAL_HAPROXY_TEMPLATE, threads=threads, listen_address=bench.VIP_ADDRESS, listen_port=port,
                server1=f"{servers[0][0]}:{servers[0][1]}", server2=f"{servers[1][0]}:{servers[1][1]}",
            )  # fmt: skip
            variants = [("minimal", "bench/minimal-haproxy.cfg.tmpl", minimal), ("rendered", "case (b)", rendered)]
            only = {v for v in args.only.split(",") if v}
            variants += [v for v in variants_for(rendered) if not only or v[0] in only]
            targets: dict[str, bench.Target] = {}
            configs: dict[str, str] = {}
            for i, (name, _desc, text) in enumerate(variants):
                p = bench.free_port()
                # every variant listens on its own port; state files and sockets get their own names
                text = text.replace(listen, f"{bench.VIP_ADDRESS}:{p}")
                state = tmp / "state" / "haproxy"
                own = tmp / "state" / f"haproxy-v{i}"
                own.mkdir(parents=True, exist_ok=True)
                text = text.replace(f"{state}/", f"{own}/")
                path = tmp / f"v{i}.cfg"
                path.write_text(text)
                haproxy_check(path)
                child = Child(f"v{i}{name}", ["haproxy", "-db", "-f", str(path)], tmp / f"v{i}.log").start()
                children.append(child)
                bench.wait_http(bench.VIP_ADDRESS, p, child=child)
                targets[name] = bench.Target(name, bench.VIP_ADDRESS, p, pids=child.pids, child=child, config=text)
                configs[name] = text
            names = [v[0] for v in variants]
            for w in workloads:
                for name in names:
                    bench.measure(targets[name], w, 1, demo.pid)
                for rnd in range(args.rounds):
                    for name in rotated(names, rnd):
                        d = bench.measure(targets[name], w, args.duration, demo.pid)
                        runs.append({"workload": w.name, "variant": name, "round": rnd, **d})
                        print(f"{w.name:16} {rnd} {name:20} {d['rps']:9.0f} req/s  proxy "
                              f"{d['cpu_s']['proxy'] / max(d['requests'], 1) * 1e6:6.1f} µs/req  err {d['socket_errors']}",
                              flush=True)  # fmt: skip
        finally:
            for c in reversed(children):
                c.stop()
            demo.stop()
    summary: dict[str, Any] = {}
    for w in workloads:
        rows = {}
        for name, desc, _ in variants:
            rs = [r for r in runs if r["workload"] == w.name and r["variant"] == name]
            rows[name] = {
                "description": desc,
                "rps": statistics.median(r["rps"] for r in rs),
                "proxy_cpu_us_per_req": statistics.median(r["cpu_s"]["proxy"] / r["requests"] * 1e6 for r in rs),
                "p99_ms": statistics.median(r["latency_us"]["p99"] / 1000 for r in rs),
                "other_load": statistics.median(r["other_load"] for r in rs),
            }
        # each variant against minimal within the same round (runs seconds apart), median over rounds:
        # steadier than a ratio of medians when other work on the machine comes and goes
        for name, row in rows.items():
            rps_r, cpu_r = [], []
            for rnd in range(args.rounds):
                v = [r for r in runs if r["workload"] == w.name and r["variant"] == name and r["round"] == rnd]
                m = [r for r in runs if r["workload"] == w.name and r["variant"] == "minimal" and r["round"] == rnd]
                if v and m and m[0]["rps"] and m[0]["cpu_s"]["proxy"]:
                    rps_r.append(v[0]["rps"] / m[0]["rps"])
                    cpu_r.append((v[0]["cpu_s"]["proxy"] / v[0]["requests"]) / (m[0]["cpu_s"]["proxy"] / m[0]["requests"]))
            row["rps_vs_minimal"] = statistics.median(rps_r)
            row["cpu_vs_minimal"] = statistics.median(cpu_r)
            row["rps_vs_minimal_per_round"] = [round(x, 3) for x in rps_r]
            row["cpu_vs_minimal_per_round"] = [round(x, 3) for x in cpu_r]
        summary[w.name] = rows
    doc = {
        "benchmark": "ablate",
        "started": started.isoformat(timespec="seconds"),
        "parameters": {"duration_s": args.duration, "rounds": args.rounds, "nbthread": threads},
        "versions": versions(),
        "machine": machine_info(),
        "configs": configs,
        "runs": runs,
        "summary": summary,
    }
    out = write_results(args.results_dir, f"{stamp(started)}-ablate.json", doc)
    for wname, rows in summary.items():
        print(f"\n{wname}\n| variant | takes out | req/s | vs minimal | proxy CPU µs/req | vs minimal | p99 ms |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for name, r in rows.items():
            print(f"| {name} | {r['description']} | {r['rps']:,.0f} | {r['rps_vs_minimal']:.3f} | "
                  f"{r['proxy_cpu_us_per_req']:.1f} | {r['cpu_vs_minimal']:.2f} | {r['p99_ms']:.2f} |")  # fmt: skip
    other = statistics.median(r["other_load"] for r in runs)
    print(f"\nother work on the machine during the runs: median {other:.0%} of its CPU")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
