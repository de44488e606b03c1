#!/usr/bin/env python3
"""HA failover benchmark: how long a client goes without an answer when the master of an HA pair goes (run as root).

    .venv/bin/python bench/ha.py                 # 10 failovers, graceful and hard alternating (README updated)
    .venv/bin/python bench/ha.py --failovers 20  # more of them
    .venv/bin/python bench/ha.py --quick         # 2 failovers; README untouched unless --readme is given

The bed is the one of tests/netns/test_ha.py (tests/netns/ha_support.py): two appliances (`pacslb up`:
HAProxy, keepalived VRRPv3 with 100 ms adverts, the peer link), a client and two real servers, each in
its own namespace on one bridge. A client loop sends one request after another to the VIP, each on a new
connection, with a 100 ms connect timeout (so that a lost SYN is retried at once rather than after the
kernel's 1 s retransmission). Failovers alternate:

  stop   `pacslb stop` on the master: keepalived sends a priority-0 advert, the backup takes over at once
  kill   kill -9 of the master's controller, HAProxy and keepalived, and its link taken down: the backup
         takes over when it misses three adverts (plus its skew time)

after each, the old master starts again (as backup: nopreempt) before the next failover. A failover's
gap is the time from the last answer before its first failed request to the first answer after its last
one. Requests that fail outside a failover are counted (they should be none).

Writes bench/results/<timestamp>-ha.json and the section of bench/README.md between
``<!-- results:ha start -->`` and ``<!-- results:ha end -->``.

Network: traffic only inside the namespaces this script creates (pacslb-bench-<pid>-<n>-<role>), with
addresses that exist only inside them; namespaces and processes are removed at the end, also on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "netns"))
from ha_support import build_pair, gaps, sigterm_as_interrupt, wait_until  # noqa: E402
from lib.machine import first_line  # noqa: E402
from lib.report import replace_section, stamp, utc_now, write_results  # noqa: E402

RESULTS_DIR = HERE / "results"
README = HERE / "README.md"


def run(failovers: int) -> dict:
    started = utc_now()
    pair = build_pair(tag="bench")
    try:
        stop_file = pair.workdir / "stop"  # removed with the bed
        loop = pair.loop(stop_file, 60 + failovers * 60)
        triggers: list[tuple[float, float, str, str]] = []  # (trigger, window end, how, node)
        try:
            time.sleep(1.0)
            for i in range(failovers):
                master = pair.wait_one_master()
                backup = pair.other(master)
                wait_until(lambda backup=backup: pair.nodes[backup].vrrp() == "BACKUP", 60, 0.1, "a backup")
                how = "stop" if i % 2 == 0 else "kill"
                trigger = time.time()
                pair.stop(master) if how == "stop" else pair.kill(master)
                wait_until(lambda backup=backup: pair.nodes[backup].vrrp() == "MASTER", 60, 0.05, f"{backup} to take over")
                triggers.append((trigger, time.time() + 1.0, how, master))
                time.sleep(1.0)
                pair.start(master) if how == "stop" else pair.revive(master)
                print(f"failover {i + 1}/{failovers} ({how} {master}) done", file=sys.stderr)
            time.sleep(1.0)
        finally:
            stop_file.touch()
            out, _ = loop.communicate(timeout=120)
        records = json.loads(out)
    finally:
        pair.close()
    found, outside = gaps(records, [(start, end) for start, end, _, _ in triggers])
    return {
        "started": started.isoformat(),
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(), "keepalived": first_line(["keepalived", "--version"])},
        "settings": {"advert_interval_ms": 100, "transport": "unicast", "preempt": False, "client_connect_timeout_ms": 100},
        "failovers": [
            {"how": how, "from": node, "gap_ms": round(g * 1000, 1)}
            for (_, _, how, node), g in zip(triggers, found, strict=False)
        ],
        "requests": len(records),
        "failed": sum(1 for r in records if not r[2]),
        "failed_outside_failovers": len(outside),
    }


def _stats(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{min(values):.0f} / {statistics.median(values):.0f} / {max(values):.0f}"


def section(doc: dict) -> str:
    rows = doc["failovers"]
    stop = [r["gap_ms"] for r in rows if r["how"] == "stop"]
    kill = [r["gap_ms"] for r in rows if r["how"] == "kill"]
    lines = [
        f"Run {doc['started'][:19]}Z, {doc['machine']['cpus']} CPUs, kernel {doc['machine']['kernel']}, "
        f"{doc['machine']['keepalived']}; VRRPv3, advert interval 100 ms, unicast, nopreempt.",
        "",
        "| failover | count | gap min / median / max (ms) |",
        "|---|---|---|",
        f"| graceful (`pacslb stop` on the master) | {len(stop)} | {_stats(stop)} |",
        f"| hard (kill -9 and link down) | {len(kill)} | {_stats(kill)} |",
        "",
        "Gaps in order (ms): " + ", ".join(f"{r['gap_ms']:.0f} ({r['how']})" for r in rows) + ".",
        "",
        f"Requests: {doc['requests']}, failed {doc['failed']} (all inside the failovers' gaps: "
        f"{doc['failed_outside_failovers']} outside).",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--failovers", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="2 failovers; README untouched unless --readme")
    ap.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    ap.add_argument("--readme", type=Path, default=None)
    ap.add_argument("--no-readme", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/ha.py needs root (network namespaces)", file=sys.stderr)
        return 2
    with sigterm_as_interrupt():
        doc = run(2 if args.quick else args.failovers)
    out = write_results(args.results_dir, f"{stamp(doc['started'])}-ha.json", doc)
    text = section(doc)
    print(text)
    print(f"results: {out}", file=sys.stderr)
    readme = args.readme or (None if args.quick or args.no_readme else README)
    if readme is not None:
        replace_section(readme, "ha", text)
    return 1 if doc["failed_outside_failovers"] else 0


if __name__ == "__main__":
    sys.exit(main())
