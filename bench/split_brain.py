#!/usr/bin/env python3
"""Split-brain benchmark: after a cut of the link between the two nodes of an HA pair, when is a client answered again?
(run as root)

    .venv/bin/python bench/split_brain.py                        # 20 cuts for each remedy
    .venv/bin/python bench/split_brain.py --rounds 5 --remedy higher-prio-send-advert

The bed is the one of tests/netns/test_ha.py (tests/netns/ha_support.py); a round is the one of
tests/netns/split_brain_support.py: a cut of `--hold` seconds (lb2 becomes master too and the client
follows its gratuitous ARPs), then the restore (lb1, the primary, wins). A client loop sends a request
every 10 ms. Per round: the time from the restore to the client's ARP entry naming lb1 again, and to its
first answer after the last failure. A round still stranded after `--limit` seconds is counted as
stranded and its client's ARP entry flushed (left alone it lasts until the entry expires: 24 to 44 s).

Remedies (each node's keepalived.conf is rewritten and keepalived reloaded with SIGHUP; the controller
writes the file again only on a change, and no change is made during the run):

  none                      garp_lower_prio_repeat only (what pacslb rendered before): the winner
                            re-announces the VIPs only when it hears an advert of lower priority
  higher-prio-send-advert   + higher_prio_send_advert: a master that hears a higher priority sends one
                            advert of its own before going backup, so the winner always hears it
  garp-master-refresh       + garp_master_refresh 1: the master repeats its gratuitous ARPs every second

Writes bench/results/<timestamp>-split-brain.json. Traffic only inside the namespaces this script
creates (pacslb-bench-<pid>-<n>-<role>); namespaces and processes are removed at the end, also on failure.
"""

from __future__ import annotations

import argparse
import json
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
from ha_support import build_pair, sigterm_as_interrupt, wait_until  # noqa: E402
from lib.machine import first_line  # noqa: E402
from lib.report import stamp, utc_now, write_results  # noqa: E402
from split_brain_support import answered_after, split_brain_round  # noqa: E402

from pacslb.engines.haproxy.process import read_pidfile  # noqa: E402
from pacslb.engines.keepalived import process as keepalived_process  # noqa: E402
from pacslb.engines.keepalived.render import KeepalivedPaths  # noqa: E402

RESULTS_DIR = HERE / "results"
REMEDY_LINES = ("higher_prio_send_advert", "garp_master_refresh")
REMEDIES = {
    "none": "",
    "higher-prio-send-advert": "    higher_prio_send_advert\n",
    "garp-master-refresh": "    garp_master_refresh 1\n    garp_master_refresh_repeat 1\n",
}


def with_remedy(text: str, remedy: str) -> str:
    """keepalived.conf without any remedy line, then with the one asked for (after garp_master_delay)."""
    kept = "".join(line for line in text.splitlines(keepends=True) if not line.strip().startswith(REMEDY_LINES))
    added = REMEDIES[remedy]
    return re.sub(r"(    garp_master_delay [^\n]*\n)", lambda m: m.group(1) + added, kept, count=1)


def set_remedy(pair, remedy: str) -> None:
    for node in pair.nodes.values():
        paths = KeepalivedPaths(node.state)
        paths.config.write_text(with_remedy(paths.config.read_text(), remedy))
        checked = pair.lab.run(node.ns, [keepalived_process.DEFAULT_BINARY, "-t", "-f", str(paths.config)], check=False)
        assert checked.returncode == 0, checked.stdout + checked.stderr  # in the node's namespace: its interface
        pid = read_pidfile(paths.pid)
        mark = paths.log.stat().st_size
        keepalived_process.reload(pid)
        # keepalived logs the reload when it has read the file again
        wait_until(lambda paths=paths, mark=mark: b"Reload" in paths.log.read_bytes()[mark:] or
                   b"reload" in paths.log.read_bytes()[mark:], 10, 0.05, "keepalived to reload")  # fmt: skip


def run(remedies: list[str], rounds: int, hold: float, limit: float) -> dict:
    started = utc_now()
    pair = build_pair(tag="bench")
    results: dict[str, list[dict]] = {}
    try:
        for remedy in remedies:
            set_remedy(pair, remedy)
            pair.wait_one_master()
            stop_file = pair.workdir / f"stop-{remedy}"
            loop = pair.loop(stop_file, 60 + rounds * (hold + limit + 10))
            done = []
            try:
                for i in range(rounds):
                    done.append(split_brain_round(pair, hold, limit))
                    r = done[-1]
                    print(f"{remedy}: round {i + 1}/{rounds}: cut {r.restored - r.cut:.3f}s, lb2 released the VIP after "
                          f"{r.settled - r.restored:.3f}s, client back after "
                          f"{'stranded' if r.back is None else f'{r.back - r.restored:.3f}s'}", file=sys.stderr)  # fmt: skip
                wait_until(lambda: pair.request()["ok"], 10, 0.05, "the client to be answered after the last round")
            finally:
                stop_file.touch()
                out, _ = loop.communicate(timeout=120)
            records = json.loads(out)
            rows = []
            for i, r in enumerate(done):
                until = done[i + 1].cut if i + 1 < len(done) else time.time()
                answered = answered_after(records, r.restored, until)
                rows.append({
                    "settled_ms": round((r.settled - r.restored) * 1000, 1),
                    "arp_back_ms": None if r.back is None else round((r.back - r.restored) * 1000, 1),
                    "answered_ms": None if answered is None or r.back is None else round(answered * 1000, 1),
                })  # fmt: skip
            results[remedy] = rows
    finally:
        pair.close()
    return {
        "started": started.isoformat(),
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(), "keepalived": first_line(["keepalived", "--version"])},
        "settings": {"advert_interval_ms": 100, "hold_s": hold, "limit_s": limit, "client_pause_ms": 10},
        "remedies": results,
    }


def summary(doc: dict) -> str:
    lines = ["| remedy | cuts | stranded (> limit) | client answered after the restore, min / median / max (ms) |",
             "|---|---|---|---|"]  # fmt: skip
    for remedy, rows in doc["remedies"].items():
        answered = [r["answered_ms"] for r in rows if r["answered_ms"] is not None]
        stranded = sum(1 for r in rows if r["arp_back_ms"] is None)
        span = f"{min(answered):.0f} / {statistics.median(answered):.0f} / {max(answered):.0f}" if answered else "-"
        lines.append(f"| {remedy} | {len(rows)} | {stranded} | {span} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--remedy", choices=sorted(REMEDIES), action="append", help="repeatable; default: all")
    ap.add_argument("--hold", type=float, default=1.0, help="seconds from the cut to the restore")
    ap.add_argument("--limit", type=float, default=3.0, help="seconds after the restore before a round counts as stranded")
    ap.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/split_brain.py needs root (network namespaces)", file=sys.stderr)
        return 2
    with sigterm_as_interrupt():
        doc = run(args.remedy or list(REMEDIES), args.rounds, args.hold, args.limit)
    out = write_results(args.results_dir, f"{stamp(doc['started'])}-split-brain.json", doc)
    print(summary(doc))
    print(f"results: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
