#!/usr/bin/env python3
"""GSLB benchmark (issue 19): queries per second of health-aware, ECS-scoped answers, and the time from a site
failing to the first changed answer (run as root).

    .venv/bin/python bench/gslb.py                  # 10 s of dnsperf per case, 5 failovers (README updated)
    .venv/bin/python bench/gslb.py --quick          # 2 s, 1 failover; README untouched unless --readme is given

The bed is the one of tests/netns/test_gslb.py (tests/netns/gslb_support.py): a GSLB node (`pacslb up`:
PowerDNS with the geoip backend, HAProxy for its own site), site dc1 (a real HTTP server the node checks every
1 s, fall 1), and a client namespace. dnsperf (Debian's) runs in the client namespace against the node:

  topology + ECS near dc1   wfc.pacs.test A with EDNS Client Subnet 10.61.0.0/24 (answer: dc1, scope /16)
  topology + ECS near dc2   the same with 10.62.0.0/24 (answer: dc2)
  topology, no ECS          the client's own address decides
  failover + ECS            sr.pacs.test A (one answer for everyone, scope /0)

Each answer is checked once with dnspython before the run (address and ECS scope), so the figure is of the
answers a resolver would cache per network. Then, `--failovers` times: a client polls wfc.pacs.test (ECS near
dc1) every 20 ms; dc1's server is stopped; the time to the first answer naming dc2 is recorded; the server
starts again and the time back to dc1 too. The issue's bounds: 20,000 queries/s, and interval + 1 s (2 s).

Writes bench/results/<timestamp>-gslb.json and the section of bench/README.md between
``<!-- results:gslb start -->`` and ``<!-- results:gslb end -->``. Traffic only inside the namespaces this script
creates (pacslb-bench-<pid>-<n>-<role>), removed at the end, also on failure.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "netns"))
from gslb_support import CHECK_INTERVAL, DNS, DNS_PORT, NEAR1_CLIENT, S1, VIP, GslbBed, build_bed  # noqa: E402
from ha_support import sigterm_as_interrupt  # noqa: E402
from lib.machine import first_line  # noqa: E402
from lib.report import replace_section, stamp, utc_now, write_results  # noqa: E402

RESULTS_DIR = HERE / "results"
README = HERE / "README.md"
GOAL_QPS = 20_000
CASES = [
    # name, query, ECS (address, prefix) or None, the answer expected, its ECS scope
    ("topology + ECS near dc1", "wfc.pacs.test", ("10.61.0.0", 24), S1, 16),
    ("topology + ECS near dc2", "wfc.pacs.test", ("10.62.0.0", 24), VIP, 16),
    ("topology, no ECS (client address)", "wfc.pacs.test", None, S1, None),
    ("failover + ECS", "sr.pacs.test", ("10.61.0.0", 24), S1, 0),
]


def ecs_option(address: str, prefix: int) -> str:
    """dnsperf's -E value for an EDNS Client Subnet option (code 8): family, source prefix, scope 0, address."""
    octets = bytes(int(o) for o in address.split("."))[: (prefix + 7) // 8]
    return "8:" + (b"\x00\x01" + bytes([prefix, 0]) + octets).hex()


def parse_dnsperf(text: str) -> dict:
    """The figures of dnsperf's summary."""

    def number(label: str) -> float | None:
        found = re.search(rf"{re.escape(label)}:\s+([0-9.]+)", text)
        return float(found[1]) if found else None

    return {"qps": number("Queries per second"), "completed": number("Queries completed"), "lost": number("Queries lost"),
            "latency_ms": None if number("Average Latency (s)") is None else number("Average Latency (s)") * 1000}  # fmt: skip


def dnsperf(bed: GslbBed, name: str, ecs: tuple[str, int] | None, seconds: float) -> dict:
    query_file = bed.workdir / "queries.txt"
    query_file.write_text(f"{name} A\n")
    args = ["dnsperf", "-s", DNS, "-p", str(DNS_PORT), "-d", str(query_file), "-l", str(seconds), "-c", "8", "-T", "2",
            "-q", "200"]  # fmt: skip
    if ecs:
        args += ["-E", ecs_option(*ecs)]
    done = bed.lab.run(bed.spaces["client"], args, timeout=seconds + 60)
    return parse_dnsperf(done.stdout)


def failover_times(bed: GslbBed, count: int) -> list[dict]:
    rounds = []
    for _ in range(count):
        watcher = bed.watch("wfc.pacs.test", S1, "10.61.0.0/24")
        failed = time.monotonic()
        bed.stop_server("s1")
        moved = bed.watched(watcher)
        watcher = bed.watch("wfc.pacs.test", VIP, "10.61.0.0/24")
        recovered = time.monotonic()
        bed.start_server("s1")
        back = bed.watched(watcher)
        rounds.append({"down_s": None if moved["at"] is None else round(moved["at"] - failed, 3),
                       "back_s": None if back["at"] is None else round(back["at"] - recovered, 3)})  # fmt: skip
        print(f"failover {len(rounds)}/{count}: {rounds[-1]}", file=sys.stderr)
    return rounds


def run(seconds: float, failovers: int) -> dict:
    started = utc_now()
    load_before = os.getloadavg()[0]
    bed = build_bed(tag="bench")
    try:
        cases = []
        for title, name, ecs, expected, scope in CASES:
            answer = bed.query(name, subnet=f"{ecs[0]}/{ecs[1]}" if ecs else None, source=NEAR1_CLIENT)
            assert answer["answers"] == [expected] and answer["scope"] == scope, f"{title}: unexpected answer {answer}"
            figures = dnsperf(bed, name, ecs, seconds)
            cases.append({"case": title, "answer": expected, "scope": scope, **figures})
            print(f"{title}: {figures['qps']:.0f} q/s", file=sys.stderr)
        rounds = failover_times(bed, failovers)
    finally:
        bed.close()
    return {
        "started": started.isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "pdns": first_line(["pdns_server", "--version"]),
            "dnsperf": first_line(["dnsperf", "-h"]),
        },  # fmt: skip
        "load_average": {"before": round(load_before, 1), "after": round(os.getloadavg()[0], 1)},
        "settings": {"seconds": seconds, "dnsperf": "-c 8 -T 2 -q 200", "check_interval_s": CHECK_INTERVAL},
        "cases": cases,
        "failovers": rounds,
    }


def _stats(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return f"{min(values) * 1000:.0f} / {statistics.median(values) * 1000:.0f} / {max(values) * 1000:.0f}"


def section(doc: dict) -> str:
    lines = [
        f"Run {doc['started'][:19]}Z, {doc['machine']['cpus']} CPUs (shared), kernel {doc['machine']['kernel']}; "
        f"PowerDNS 4.7 geoip backend, dnsperf {doc['settings']['dnsperf']}, {doc['settings']['seconds']:g} s per case; "
        f"load average {doc['load_average']['before']:g} before, {doc['load_average']['after']:g} after.",
        "",
        "| case | answer (ECS scope) | queries/s | lost | mean latency (ms) |",
        "|---|---|---|---|---|",
    ]
    for case in doc["cases"]:
        scope = "-" if case["scope"] is None else f"/{case['scope']}"
        lines.append(f"| {case['case']} | {case['answer']} ({scope}) | {case['qps']:,.0f} | {case['lost']:.0f} | "
                     f"{case['latency_ms']:.2f} |")  # fmt: skip
    down = [r["down_s"] for r in doc["failovers"]]
    back = [r["back_s"] for r in doc["failovers"]]
    lines += [
        "",
        f"Site failing to the first changed answer (check every {doc['settings']['check_interval_s']:g} s, fall 1; "
        f"bound {doc['settings']['check_interval_s'] + 1:g} s), {len(down)} rounds, min / median / max (ms): "
        f"down {_stats(down)}, back {_stats(back)}.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="dnsperf's run per case")
    ap.add_argument("--failovers", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="2 s per case, 1 failover; README untouched unless --readme")
    ap.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    ap.add_argument("--readme", type=Path, default=None)
    ap.add_argument("--no-readme", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/gslb.py needs root (network namespaces)", file=sys.stderr)
        return 2
    with sigterm_as_interrupt():
        doc = run(2.0 if args.quick else args.seconds, 1 if args.quick else args.failovers)
    out = write_results(args.results_dir, f"{stamp(doc['started'])}-gslb.json", doc)
    text = section(doc)
    print(text)
    print(f"results: {out}", file=sys.stderr)
    readme = args.readme or (None if args.quick or args.no_readme else README)
    if readme is not None:
        replace_section(readme, "gslb", text)
    slow = [r for r in doc["failovers"] if r["down_s"] is None or r["down_s"] > CHECK_INTERVAL + 1]
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
