#!/usr/bin/env python3
"""Failover gap of an active-active cluster (issue 20): new connections to the VIP while a node dies silently, with
the real BIRD engine and BFD, over `--deaths` deaths (run as root).

    .venv/bin/python bench/cluster_failover.py           # 10 deaths, 100 new connections/s (README updated)
    .venv/bin/python bench/cluster_failover.py --quick   # 2 deaths; README untouched unless --readme

The bed is tests/support/bird_bed.py with a client: a router namespace running its own BIRD (BGP with BFD 3 x 100
ms, `merge paths`: the VIP's route is multipath over the nodes that announce it; forwarding with
fib_multipath_hash_policy=1), two nodes each running `pacslb up` with a cluster section (HAProxy, the BIRD engine,
the VIP on lo, a real server on the node's loopback answering with the node's name), a client namespace behind the
router.

Each death: the client (tests/netns/new_connections.py) opens a new connection to the VIP every 1/`--rate` s, each
one `GET /` with a `--timeout` answer bound; once `--run` of them have succeeded (both nodes take new connections), a node dies silently (its link dropped inside
its namespace, then its controller, BIRD and HAProxy killed with SIGKILL: no BGP Cease, no withdraw leaves it); the
router's kernel route is polled until it has lost the node. The gap is the time from the death to the start of the
first of `--run` consecutive successful new connections (all of them, then, to the surviving node: the dead one
cannot answer); also recorded: the longest run of failed new connections, the last failure, and when the router's
route lost the node. Then the node is brought back (link up, `pacslb up` again on its state directory) and the next
death waits until the router routes the VIP to both nodes again. The deaths alternate between the nodes.

Writes bench/results/<timestamp>-cluster-failover.json and the section of bench/README.md between
``<!-- results:cluster-failover start -->`` and ``<!-- results:cluster-failover end -->``. Traffic only inside the
namespaces this script creates (pacslb-<pid>-<n>-<role>), removed at the end with every process, also on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # bench/lib, the benchmarks' shared helpers
from lib.checkout import REPO, use_checkout  # noqa: E402

use_checkout()
from lib import script  # noqa: E402
from lib.machine import first_line, machine_info, require_tools  # noqa: E402
from lib.report import fmt, markers, utc_now  # noqa: E402
from lib.stats import median, percentile  # noqa: E402

README = HERE / "README.md"
RESULTS_DIR = HERE / "results"
MARK_START, MARK_END = markers("cluster-failover")
CLIENT_SCRIPT = REPO / "tests" / "netns" / "new_connections.py"
GOAL_S = 1.0  # the issue: new connections succeed again within 1 s (BFD, not the BGP hold timer)
MAX_DEATHS = 50


def gap_of(attempts: list[list[Any]], death: float, dead: str, run: int, down: float | None = None) -> dict[str, Any]:
    """What the client saw after a death at `death` (CLOCK_MONOTONIC): `attempts` are [start, node or None,
    error or None], sorted by start. The gap: from the death to the start of the first of `run` consecutive
    successes that all avoid `dead` (None if there is no such run). `down`: when the dead node's link was down for
    sure (the link-down command ended); an attempt started between the two may still have reached it."""
    after = [a for a in attempts if a[0] >= death]
    gap = None
    streak = 0
    for i, (_, node, _) in enumerate(after):
        streak = streak + 1 if node is not None and node != dead else 0
        if streak == run:
            gap = after[i - run + 1][0] - death
            break
    longest, current, longest_span = 0, [], 0.0
    for a in after:
        if a[1] is None:
            current.append(a[0])
            if len(current) > longest:
                longest, longest_span = len(current), current[-1] - current[0]
        else:
            current = []
    failed = [a for a in after if a[1] is None]
    nodes: dict[str, int] = {}
    for a in attempts:
        if a[1] is not None:
            nodes[a[1]] = nodes.get(a[1], 0) + 1
    errors: dict[str, int] = {}
    for a in failed:
        errors[a[2]] = errors.get(a[2], 0) + 1
    return {
        "gap_s": None if gap is None else round(gap, 4),
        "attempts_after_death": len(after),
        "failed_after_death": len(failed),
        "longest_failed_run": longest,
        "longest_failed_run_span_s": round(longest_span, 4),
        "last_failure_s": round(failed[-1][0] - death, 4) if failed else None,
        "dead_node_after_death": sum(1 for a in after if a[1] == dead),
        "dead_node_after_link_down": sum(1 for a in after if a[1] == dead and a[0] >= (death if down is None else down)),
        "successes_per_node": nodes,
        "errors": errors,
    }


def summary(values: list[float]) -> dict[str, float | None]:
    """min, median, p90 (linear interpolation) and max of `values`; None for each if there are none."""
    if not values:
        return {"min": None, "median": None, "p90": None, "max": None}
    return {"min": min(values), "median": median(values), "p90": round(percentile(values, 90), 4), "max": max(values)}


def one_death(bed: Any, dead: str, opts: argparse.Namespace) -> dict[str, Any]:
    """`dead` dies silently while the client opens new connections; the node is back (routed again) on return."""
    from support.bird_bed import CLIENT_NET, NODES, VIP, VIP_PORT  # noqa: F401 - the bed's addresses
    from support.wait import wait_until

    bed.wait_next_hops(set(NODES.values()), "both nodes announce before a death", timeout=60)
    client = bed.lab.popen(bed.ns["cl"], [sys.executable, str(CLIENT_SCRIPT), VIP, str(VIP_PORT), str(opts.rate),
                                          str(opts.window), str(opts.timeout), str(opts.run)], stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert client.stdout is not None
        first = client.stdout.readline().strip()
        if first != "ready":
            raise RuntimeError(f"the client had no successful connection before the death: {first[:200]!r}")
        death, down = bed.silent_death(dead)  # the gap counts from the start of the link-down command
        killed_s = time.monotonic() - death
        survivor = {n: a for n, a in NODES.items() if n != dead}
        wait_until(lambda: bed.next_hops() == set(survivor.values()), opts.window, 0.02, f"the router to drop {dead}")
        route_s = time.monotonic() - death
        out, _ = client.communicate(timeout=opts.window + opts.timeout + 30)
    finally:
        if client.poll() is None:
            bed.lab.stop(client)
    attempts = json.loads(out.strip().splitlines()[-1])
    seen = gap_of(attempts, death, dead, opts.run, down)
    protocol = bed.router_protocol(dead)  # the router's BGP session with the dead node: why it went down
    seen.update(dead=dead, route_lost_node_s=round(route_s, 4), killed_s=round(killed_s, 4), link_down_s=round(down - death, 4),
                bfd_down="BFD session down" in protocol, router_session=protocol.strip().splitlines()[-1:])  # fmt: skip
    back = time.monotonic()
    bed.revive(dead, timeout=90)
    seen["revived_s"] = round(time.monotonic() - back, 2)
    return seen


def run_bench(opts: argparse.Namespace) -> dict[str, Any]:
    require_tools(("bird", "birdc", "haproxy", "ip"), "make deps")
    from support.bird_bed import NODES, ROUTER_CONF, bird_bed

    started = utc_now()
    load_before = os.getloadavg()
    deaths: list[dict[str, Any]] = []
    with bird_bed("pgap", client=True) as bed:
        names = list(NODES)
        for i in range(opts.deaths):
            dead = names[i % len(names)]
            deaths.append(one_death(bed, dead, opts))
            d = deaths[-1]
            print(f"death {i + 1}/{opts.deaths} ({dead}): gap {fmt(d['gap_s'], '.3f')} s, router {d['route_lost_node_s']:.3f} s, "
                  f"{d['failed_after_death']} failed of {d['attempts_after_death']}, longest run {d['longest_failed_run']}",
                  file=sys.stderr)  # fmt: skip
    gaps = [d["gap_s"] for d in deaths if d["gap_s"] is not None]
    return {
        "bench": "cluster-failover",
        "started": started.isoformat(),
        "finished": utc_now().isoformat(),
        "machine": machine_info(),
        "versions": {"bird": first_line(["bird", "--version"]), "haproxy": first_line(["haproxy", "-v"])},
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "settings": {
            "quick": opts.quick,
            "deaths": opts.deaths,
            "rate_per_s": opts.rate,
            "timeout_s": opts.timeout,
            "window_s": opts.window,
            "run": opts.run,
            "router_bird_conf": ROUTER_CONF,
            "bfd": "100 ms x 3 (router and nodes)",
            "fib_multipath_hash_policy": 1,
        },  # fmt: skip
        "deaths": deaths,
        "gap_s": summary(gaps),
        "route_lost_node_s": summary([d["route_lost_node_s"] for d in deaths]),
        "longest_failed_run": summary([float(d["longest_failed_run"]) for d in deaths]),
        "no_gap_found": sum(1 for d in deaths if d["gap_s"] is None),
        "goal_s": GOAL_S,
    }


def section(doc: dict[str, Any], results_name: str) -> str:
    """The README section of a results document."""
    s, m, load = doc["settings"], doc["machine"], doc["load_average"]
    g, r, f = doc["gap_s"], doc["route_lost_node_s"], doc["longest_failed_run"]
    over = [d for d in doc["deaths"] if d["gap_s"] is None or d["gap_s"] > doc["goal_s"]]

    def row(name: str, x: dict, spec: str, scale: float = 1.0, unit: str = "") -> str:
        cells = [fmt(None if x[k] is None else x[k] * scale, spec) + unit for k in ("min", "median", "p90", "max")]
        return f"| {name} | " + " | ".join(cells) + " |"

    lines = [
        f"Run {doc['started'][:19]}Z ({results_name}), {m['nproc']} CPUs shared with other work, kernel {m['kernel']}, "
        f"{doc['versions']['bird']}, {doc['versions']['haproxy']}; load average {load['before'][0]:.1f} before, "
        f"{load['after'][0]:.1f} after. {s['deaths']} silent deaths (alternating lb1, lb2), BFD {s['bfd']}, new "
        f"connections at {s['rate_per_s']:g}/s (answer bound {s['timeout_s']:g} s), gap = death to the first of "
        f"{s['run']} consecutive successes.",
        "",
        "| over the deaths | min | median | p90 | max |",
        "|---|---:|---:|---:|---:|",
        row("gap: death to new connections succeeding again", g, ".0f", 1000, " ms"),
        row("the router's route lost the node", r, ".0f", 1000, " ms"),
        row("longest run of failed new connections", f, ".0f"),
        "",
        "| death | node | gap | route lost the node | failed / new connections after the death | longest failed run | "
        "last failure | back in |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for i, d in enumerate(doc["deaths"], 1):
        lines.append(
            f"| {i} | {d['dead']} | {fmt(None if d['gap_s'] is None else d['gap_s'] * 1000, '.0f')} ms | "
            f"{d['route_lost_node_s'] * 1000:.0f} ms | {d['failed_after_death']} / {d['attempts_after_death']} | "
            f"{d['longest_failed_run']} | {fmt(None if d['last_failure_s'] is None else d['last_failure_s'] * 1000, '.0f')} ms | "
            f"{d['revived_s']:.1f} s |"
        )
    verdict = (f"every gap within the issue's {doc['goal_s']:g} s" if not over else
               f"{len(over)} of {len(doc['deaths'])} gaps over the issue's {doc['goal_s']:g} s (or none found)")  # fmt: skip
    lines += ["", f"Goal: {verdict}.", ""]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke: 2 deaths; README untouched")
    ap.add_argument("--deaths", type=int, help=f"silent deaths (default 10, --quick 2; at most {MAX_DEATHS})")
    ap.add_argument("--rate", type=float, default=100.0, help="new connections per second (default 100)")
    ap.add_argument("--timeout", type=float, default=0.5, help="a new connection's answer bound, s (default 0.5)")
    ap.add_argument("--window", type=float, default=4.0, help="the client's run per death, s (default 4)")
    ap.add_argument("--run", type=int, default=20, help="consecutive successes that end the gap (default 20)")
    script.results_options(ap, "cluster-failover", RESULTS_DIR)
    args = ap.parse_args(argv)
    args.deaths = args.deaths if args.deaths is not None else (2 if args.quick else 10)
    problems = []
    if not 1 <= args.deaths <= MAX_DEATHS:
        problems.append(f"--deaths must be between 1 and {MAX_DEATHS}")
    if not 10 <= args.rate <= 500:
        problems.append("--rate must be between 10 and 500")
    if not 0.05 <= args.timeout <= 5:
        problems.append("--timeout must be between 0.05 and 5")
    if not 1 <= args.window <= 30:
        problems.append("--window must be between 1 and 30")
    if not 2 <= args.run <= 1000:
        problems.append("--run must be between 2 and 1000")
    elif args.run > args.rate * args.window / 2:
        problems.append("--run must be at most half the connections of a window (--rate x --window / 2)")
    if problems:
        ap.error("; ".join(problems))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report is not None:
        return script.report_only(args, "cluster-failover", section)
    if not script.is_root("bench/cluster_failover.py", "network namespaces"):
        return 2
    doc = script.unwinding_sigterm(run_bench, args)
    script.publish(doc, args, "cluster-failover", section, README)
    return 1 if doc["no_gap_found"] else 0


if __name__ == "__main__":
    sys.exit(main())
