#!/usr/bin/env python3
"""Active-active cluster benchmark (issue 20): connections per second with 1, 2 and 3 nodes behind an ECMP router,
each node's CPU budgeted alike; flows broken when a node withdraws, with plain and resilient ECMP (run as root).

    .venv/bin/python bench/cluster.py           # full run: 10 s per measurement, 3 rounds, 3,000 flows (README updated)
    .venv/bin/python bench/cluster.py --quick   # smoke: 2 s, 1 round, 300 flows; README untouched unless --readme

The bed is tests/support/cluster_bed.py: a router namespace (forwarding, fib_multipath_hash_policy=1), three
node namespaces each holding the VIP on lo and running HAProxy with the configuration pacslb renders (one thread),
two real-server namespaces (nginx for HTTP, an asyncio echo for long-lived TCP), a client namespace.

Connections per second: wrk in the client namespace, a new TCP connection and one small HTTP request each
(`Connection: close`), to the VIP's layer7-http service, with the router's route naming 1, 2 then 3 nodes (plain
multipath). Every node's HAProxy runs in a cgroup of its own with the same CFS bandwidth budget (cgroup v2
cpu.max; v1's cfs quota where the cpu controller is on v1: the run says which), so that the load balancers' CPU is
the bottleneck; rounds interleave the node counts. A last case, 3 nodes without a budget, shows how far the rest of
the bed (client, router, real servers, the machine's other work) lets the three go: a 3-node figure close to it is
capped by the bed, not by the nodes. The goal of the issue: 3 nodes reach at least 2.7x one node.

Flow stability: `--flows` long-lived connections through the VIP to the layer7-tcp service (each greeted by the
real server, which names the node that opened it; each echoed once before, right after and again after the
withdrawal); one node is taken out of the route (plain multipath) or out of the resilient next-hop group, as a
BGP withdraw would; the flows broken on the *surviving* nodes are counted, and so are the withdrawn node's (all
of them: the router sends them to a node without their socket). Under hash-threshold ECMP which node leaves
matters (the last or the first of three moves a sixth of the hash space between the others, the middle one
moves none of theirs): `--withdraw` picks the nodes, one trial each, a fresh set of flows each time.

Not measured here (it needs the BIRD engine and BFD): the failover gap after a node's silent death; that is
bench/cluster_failover.py.

Writes bench/results/<timestamp>-cluster.json and the section of bench/README.md between
``<!-- results:cluster start -->`` and ``<!-- results:cluster end -->``. Traffic only inside the namespaces this
script creates (pacslb-bench-<pid>-<n>-<role>), removed at the end with every process, also on failure.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # bench/lib, the benchmarks' shared helpers
from lib.checkout import use_checkout  # noqa: E402

use_checkout()
from lib import script, wrk  # noqa: E402
from lib.cpu_budget import CpuBudget, detect  # noqa: E402
from lib.machine import machine_info, require_tools, versions  # noqa: E402
from lib.procfs import run_seconds  # noqa: E402
from lib.report import fmt, markers, utc_now  # noqa: E402
from lib.stats import median, ratio  # noqa: E402

from support.cluster_bed import BUCKETS, HTTP_PORT, IDLE_TIMER, NODES, VIP, ClusterBed, cluster_bed  # noqa: E402

README = HERE / "README.md"
RESULTS_DIR = HERE / "results"
MARK_START, MARK_END = markers("cluster")
GOAL_RATIO = 2.7
NODE_NAMES = list(NODES)
# 10% of a CPU per node: at 20% three nodes need about 4,000 connections/s, which the rest of the bed (wrk, the
# router's forwarding, nginx, on 2 CPUs shared with other work) did not always carry; the nodes were then short of
# their budget and the ratio measured the bed. A period of 20 ms (not the default 100 ms) keeps a throttled node's
# stall short, and 256 connections keep every node busy through its stalls (64 did not: each node idled).
CPU_PERCENT = 10.0
PERIOD_US = 20_000
MAX_FLOWS = 20_000  # open files: the client holds one per flow, a node two


# --- connections per second ------------------------------------------------------------------------


def cps_workload(connections: int) -> wrk.Workload:
    return wrk.Workload("connection-per-request", "/", connections, True,
                        "GET / (a few bytes from nginx), Connection: close: a new TCP connection per request")  # fmt: skip


def measure_cps(bed: ClusterBed, budget: CpuBudget, nodes: list[str], seconds: int, connections: int) -> dict[str, Any]:
    """One wrk run through the VIP with the route naming `nodes`; the nodes' CPU and throttling during it."""
    bed.route_plain(nodes)
    url = f"http://{VIP}:{HTTP_PORT}/"
    before = {n: (run_seconds([bed.haproxy[n].pid]), budget.stat(n)) for n in NODE_NAMES}
    done = bed.lab.run(bed.client, wrk.wrk_command(url, cps_workload(connections), seconds), check=False, timeout=seconds + 60)
    report = wrk.report_of(done, f"with {len(nodes)} node(s)")
    per_node = {}
    for n in NODE_NAMES:
        cpu0, stat0 = before[n]
        stat1 = budget.stat(n)
        periods = stat1["nr_periods"] - stat0["nr_periods"]
        per_node[n] = {
            "cpu_s": round(run_seconds([bed.haproxy[n].pid]) - cpu0, 3),
            "throttled_periods": stat1["nr_throttled"] - stat0["nr_throttled"],
            "periods": periods,
            "throttled_s": round(stat1["throttled_s"] - stat0["throttled_s"], 3),
        }
    seconds_run = report["duration_us"] / 1e6
    return {
        "nodes": len(nodes),
        "cps": round(report["rps"], 1),
        "requests": report["requests"],
        "socket_errors": report["socket_errors"],
        "non_2xx_3xx": report["errors"]["status"],
        "p50_ms": report["latency_us"]["p50"] / 1000,
        "p99_ms": report["latency_us"]["p99"] / 1000,
        "node_cpu_share": {n: round(v["cpu_s"] / seconds_run, 3) for n, v in per_node.items()},
        "per_node": per_node,
    }


def cps_cases(bed: ClusterBed, budget: CpuBudget, opts: argparse.Namespace) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    counts = [1, 2, 3]
    bed.route_plain(NODE_NAMES)  # warm up every node (connections, caches) before anything is recorded
    bed.lab.run(bed.client, wrk.wrk_command(f"http://{VIP}:{HTTP_PORT}/", cps_workload(opts.connections), 1), check=False,
                timeout=60)  # fmt: skip
    for round_no in range(opts.rounds):
        order = counts if round_no % 2 == 0 else list(reversed(counts))  # drift of the machine's load spreads evenly
        for n in order:
            run = measure_cps(bed, budget, NODE_NAMES[:n], opts.seconds, opts.connections)
            run["round"] = round_no
            runs.append(run)
            print(f"round {round_no + 1}/{opts.rounds}, {n} node(s): {run['cps']:,.0f} connections/s "
                  f"(node CPU {run['node_cpu_share']})", file=sys.stderr)  # fmt: skip
    budget.set_percent(None)
    unlimited = []
    try:
        for _ in range(opts.rounds):
            unlimited.append(measure_cps(bed, budget, NODE_NAMES, opts.seconds, opts.connections))
            print(f"3 nodes, no budget: {unlimited[-1]['cps']:,.0f} connections/s", file=sys.stderr)
    finally:
        budget.set_percent(opts.cpu_percent)
    by_count = {n: median(r["cps"] for r in runs if r["nodes"] == n) for n in counts}
    return {
        "runs": runs,
        "unlimited_3_nodes": unlimited,
        "median_cps": {str(n): by_count[n] for n in counts},
        "median_cps_unlimited_3_nodes": median(r["cps"] for r in unlimited),
        "ratio_2_over_1": ratio(by_count[2], by_count[1]),
        "ratio_3_over_1": ratio(by_count[3], by_count[1]),
        "goal_ratio_3_over_1": GOAL_RATIO,
    }


# --- flow stability --------------------------------------------------------------------------------


def flow_trial(bed: ClusterBed, mode: str, withdrawn: str, count: int) -> dict[str, Any]:
    """`count` flows over three nodes, `withdrawn` taken out of the route (plain) or the group (resilient)."""
    (bed.route_plain if mode == "plain" else bed.route_resilient)(NODE_NAMES)
    route_before = bed.route()
    with bed.flows(count) as flows:
        opened = flows.opened
        before = flows.echo()
        withdrawn_at = time.monotonic()
        bed.withdraw(withdrawn)
        route_after = bed.route()
        after = flows.echo()
        echo_s = time.monotonic() - withdrawn_at
        later = flows.echo()
    nodes = opened["nodes"]
    survivors = [n for n in NODE_NAMES if n != withdrawn]
    broken = after["broken"]
    survivors_flows = sum(nodes.get(n, 0) for n in survivors)
    survivors_broken = sum(broken.get(n, 0) for n in survivors)
    total = opened["opened"]
    return {
        "mode": mode,
        "withdrawn": withdrawn,
        "flows": count,
        "opened": total,
        "failed_to_open": opened["failed"],
        "open_errors": opened["errors"],
        "flows_per_node": nodes,
        "broken_before_withdrawal": before["broken"],
        "broken_after_withdrawal": broken,
        "errors_after_withdrawal": after["errors"],
        "broken_later": later["broken"],
        "survivors_flows": survivors_flows,
        "survivors_broken": survivors_broken,
        "survivors_broken_pct_of_all": round(100 * survivors_broken / total, 2) if total else None,
        "survivors_broken_pct_of_survivors": round(100 * survivors_broken / survivors_flows, 2) if survivors_flows else None,
        "withdrawn_flows": nodes.get(withdrawn, 0),
        "withdrawn_broken": broken.get(withdrawn, 0),
        "echo_after_withdrawal_s": round(echo_s, 3),
        "route_before": route_before,
        "route_after": route_after,
    }


def flow_cases(bed: ClusterBed, opts: argparse.Namespace) -> list[dict[str, Any]]:
    trials = []
    for withdrawn in opts.withdraw:
        for mode in ("plain", "resilient"):
            trial = flow_trial(bed, mode, withdrawn, opts.flows)
            trials.append(trial)
            print(f"{mode}, {withdrawn} withdrawn: {trial['survivors_broken']} of {trial['survivors_flows']} flows broken "
                  f"on the survivors, {trial['withdrawn_broken']} of {trial['withdrawn_flows']} on {withdrawn}",
                  file=sys.stderr)  # fmt: skip
    return trials


# --- the run -----------------------------------------------------------------------------------------


def run_bench(opts: argparse.Namespace) -> dict[str, Any]:
    require_tools(("haproxy", "nginx", "wrk", "ip"), "make deps")
    backend = detect()
    print(f"CPU budget: {backend.note}", file=sys.stderr)
    if not backend.kind:
        raise RuntimeError(backend.note)
    started = utc_now()
    load_before = os.getloadavg()
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pacslb-bench-cluster-")))
        os.chmod(workdir, 0o755)  # nginx workers run as nobody
        budget = CpuBudget(f"pacslb-bench-{os.getpid()}", opts.cpu_percent, opts.period_us, backend)
        stack.callback(budget.close)  # after the bed: its processes are stopped first
        bed = stack.enter_context(cluster_bed(workdir, http=True, tag="bench", node_preexec=budget.preexec))
        for node, proc in bed.haproxy.items():
            members = budget.members(node)
            if proc.pid not in members:
                raise RuntimeError(f"{node}: haproxy (pid {proc.pid}) is not in its cgroup ({members})")
        limits = {n: budget.limit(n) for n in NODE_NAMES}
        cps = cps_cases(bed, budget, opts) if not opts.no_cps else None
        flows = flow_cases(bed, opts) if not opts.no_flows else []
    return {
        "bench": "cluster",
        "started": started.isoformat(),
        "finished": utc_now().isoformat(),
        "machine": machine_info(),
        "versions": versions(("haproxy", "nginx", "wrk")),
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "settings": {
            "quick": opts.quick,
            "seconds": opts.seconds,
            "rounds": opts.rounds,
            "connections": opts.connections,
            "flows": opts.flows,
            "withdraw": opts.withdraw,
            "cpu_percent_per_node": opts.cpu_percent,
            "period_us": opts.period_us,
            "cgroup": backend.kind,
            "cgroup_note": backend.note,
            "cgroup_limits": limits,
            "fib_multipath_hash_policy": 1,
            "resilient_group": {"buckets": BUCKETS, "idle_timer_s": IDLE_TIMER},
            "workload": cps_workload(opts.connections).parameters(),
        },
        "cps": cps,
        "flow_stability": flows,
        "not_measured": "failover gap after a silent node death, which needs BGP with BFD: this bed routes by hand",
    }


# --- the report ------------------------------------------------------------------------------------


def each(runs: list[dict[str, Any]]) -> str:
    return ", ".join(format(r["cps"], ",.0f") for r in runs)


def section(doc: dict[str, Any], results_name: str) -> str:
    s = doc["settings"]
    m = doc["machine"]
    load = doc["load_average"]
    lines = [
        f"Run {doc['started'][:19]}Z ({results_name}), {m['nproc']} CPUs shared with other work, kernel {m['kernel']}, "
        f"{doc['versions']['haproxy']}; load average {load['before'][0]:.1f} before, {load['after'][0]:.1f} after. "
        f"Bed: tests/support/cluster_bed.py (router with fib_multipath_hash_policy=1, three nodes with the VIP on lo "
        f"and HAProxy as pacslb renders it, one thread each, two nginx / echo real servers, a client).",
        "",
        f"CPU budget per node: {s['cpu_percent_per_node']:g}% of one CPU ({s['cgroup_note']}; limits "
        f"{', '.join(f'{n} {v}' for n, v in s['cgroup_limits'].items())}).",
        "",
    ]
    cps = doc["cps"]
    if cps:
        lines += [
            f"Connections per second: wrk -c {s['connections']} for {s['seconds']} s, a new connection and one "
            f"`GET /` each (`Connection: close`), {s['rounds']} round(s), median; route: plain multipath over the first "
            "N nodes. Node CPU: the HAProxy process's CPU time / run time (schedstat).",
            "",
            "| nodes | connections/s (median) | each round | x one node | node CPU, last round (lb1 / lb2 / lb3) | "
            "throttled periods | "
            "errors |",
            "|---:|---:|---|---:|---|---:|---:|",
        ]
        one = cps["median_cps"]["1"]
        for n in ("1", "2", "3"):
            runs = [r for r in cps["runs"] if str(r["nodes"]) == n]
            last = runs[-1]
            shares = " / ".join(f"{last['node_cpu_share'][x]:.2f}" for x in NODE_NAMES)
            throttled = sum(v["throttled_periods"] for r in runs for v in r["per_node"].values())
            errors = sum(r["socket_errors"] + r["non_2xx_3xx"] for r in runs)
            lines.append(
                f"| {n} | {cps['median_cps'][n]:,.0f} | {each(runs)} | "
                f"{fmt(ratio(cps['median_cps'][n], one), '.2f')} | {shares} | {throttled} | {errors} |"
            )
        unl = cps["unlimited_3_nodes"]
        shares = " / ".join(f"{unl[-1]['node_cpu_share'][x]:.2f}" for x in NODE_NAMES)
        lines.append(
            f"| 3, no budget | {cps['median_cps_unlimited_3_nodes']:,.0f} | {each(unl)} | "
            f"{fmt(ratio(cps['median_cps_unlimited_3_nodes'], one), '.2f')} | {shares} | - | "
            f"{sum(r['socket_errors'] + r['non_2xx_3xx'] for r in unl)} |"
        )
        r3 = cps["ratio_3_over_1"]
        verdict = "met" if r3 is not None and r3 >= GOAL_RATIO else "not met"
        lines += [
            "",
            f"3 nodes / 1 node: **{fmt(r3, '.2f')}x** (goal {GOAL_RATIO}x: {verdict}); 2 nodes / 1 node: "
            f"{fmt(cps['ratio_2_over_1'], '.2f')}x.",
            "",
        ]
    if doc["flow_stability"]:
        lines += [
            f"Flow stability: {s['flows']:,} long-lived flows through the VIP (layer7-tcp to an echo), one node taken out "
            f"of the route (plain multipath) or of the resilient group ({s['resilient_group']['buckets']} buckets, "
            f"idle_timer {s['resilient_group']['idle_timer_s']} s), as a BGP withdraw would; each flow echoed before, "
            "right after and again after the withdrawal.",
            "",
            "| route | withdrawn | flows per node (lb1 / lb2 / lb3) | broken on survivors | % of all flows | "
            "% of survivors' flows | withdrawn node's flows broken | broken later |",
            "|---|---|---|---:|---:|---:|---:|---:|",
        ]
        for t in doc["flow_stability"]:
            per = " / ".join(str(t["flows_per_node"].get(n, 0)) for n in NODE_NAMES)
            lines.append(
                f"| {t['mode']} | {t['withdrawn']} | {per} | {t['survivors_broken']} of {t['survivors_flows']} | "
                f"{fmt(t['survivors_broken_pct_of_all'], '.1f')}% | {fmt(t['survivors_broken_pct_of_survivors'], '.1f')}% | "
                f"{t['withdrawn_broken']} of {t['withdrawn_flows']} | {sum(t['broken_later'].values())} |"
            )
        lines += [
            "",
            "Hash-threshold ECMP cuts the hash space in equal ranges in the order of the next hops: withdrawing the "
            "last (or the first) of three moves a sixth of the hash space from one survivor to the other, withdrawing "
            "the middle one moves none of theirs. A resilient group keeps every bucket of the nodes that stay; only "
            "the withdrawn node's buckets move. The withdrawn node's own flows break either way (the router sends "
            "them to a node without their socket): a drained node must stop taking new flows, and let its established "
            "ones end, before it withdraws.",
            "",
        ]
    lines += [
        f"Not measured yet: the {doc['not_measured']}. The withdrawals here are what BGP would do, done by hand in the router.",
        "",
    ]
    return "\n".join(lines)


# --- command line ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke: 2 s, 1 round, 300 flows, lb3 only; README untouched")
    ap.add_argument("--seconds", type=int, help="wrk's run per measurement (default 10, --quick 2)")
    ap.add_argument("--rounds", type=int, help="rounds of 1, 2, 3 nodes; the median is reported (default 3, --quick 1)")
    ap.add_argument("--connections", type=int, default=256, help="wrk's connections (default 256)")
    ap.add_argument("--cpu-percent", type=float, default=CPU_PERCENT, help=f"CPU budget of each node, %% of one CPU "
                    f"(default {CPU_PERCENT:g})")  # fmt: skip
    ap.add_argument("--period-us", type=int, default=PERIOD_US, help=f"the budget's period (default {PERIOD_US} us)")
    ap.add_argument("--flows", type=int, help="long-lived flows per trial (default 3000, --quick 300)")
    ap.add_argument("--withdraw", help="nodes withdrawn, one trial each (default lb3,lb1,lb2; --quick lb3)")
    ap.add_argument("--no-cps", action="store_true", help="skip connections per second")
    ap.add_argument("--no-flows", action="store_true", help="skip flow stability")
    script.results_options(ap, "cluster", RESULTS_DIR)
    args = ap.parse_args(argv)
    args.seconds = args.seconds if args.seconds is not None else (2 if args.quick else 10)
    args.rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    args.flows = args.flows if args.flows is not None else (300 if args.quick else 3000)
    withdraw = args.withdraw or ("lb3" if args.quick else "lb3,lb1,lb2")
    args.withdraw = [w.strip() for w in withdraw.split(",") if w.strip()]
    problems = []
    if not 1 <= args.seconds <= 120:
        problems.append("--seconds must be between 1 and 120")
    if not 1 <= args.rounds <= 10:
        problems.append("--rounds must be between 1 and 10")
    if not 1 <= args.connections <= 1000:
        problems.append("--connections must be between 1 and 1000")
    if not 1 <= args.cpu_percent <= 100:
        problems.append("--cpu-percent must be between 1 and 100")
    if not 10_000 <= args.period_us <= 1_000_000:
        problems.append("--period-us must be between 10000 and 1000000")
    if not 30 <= args.flows <= MAX_FLOWS:
        problems.append(f"--flows must be between 30 and {MAX_FLOWS}")
    unknown = [w for w in args.withdraw if w not in NODES]
    if unknown or not args.withdraw:
        problems.append(f"--withdraw names nodes of {','.join(NODES)} (got {','.join(args.withdraw) or 'none'})")
    if problems:
        ap.error("; ".join(problems))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report is not None:
        return script.report_only(args, "cluster", section)
    if not script.is_root("bench/cluster.py", "network namespaces, cgroups"):
        return 2
    doc = script.unwinding_sigterm(run_bench, args)
    script.publish(doc, args, "cluster", section, README)
    errors = sum(r["socket_errors"] + r["non_2xx_3xx"] for r in (doc["cps"] or {}).get("runs", []))
    unopened = sum(t["failed_to_open"] for t in doc["flow_stability"])
    if errors or unopened:
        print(f"warning: {errors} wrk errors, {unopened} flows that did not open", file=sys.stderr)
    return 1 if errors or unopened else 0


if __name__ == "__main__":
    sys.exit(main())
