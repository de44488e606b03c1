#!/usr/bin/env python3
"""Health-check benchmark: checks per second the checker sustains without falling behind its schedule.

    .venv/bin/python bench/health_checks.py                       # every case at 500, 1000, 2000 checks/s
    .venv/bin/python bench/health_checks.py --cases dicom-echo --rates 250,500,1000 --duration 10
    .venv/bin/python bench/health_checks.py --quick               # smoke: 2 s, one rate; README untouched

For each case and rate, a checker process of its own (this script with --worker) runs pacslb's real
`Checker` with N = rate x interval watches (one per simulated real server, interval 1 s, rise 2, fall 3),
each with the case's real probe. The watches join in 20 batches over the first interval, so the checks
spread over the second as a service with many real servers would have them. After a warm-up, it measures
for --duration seconds:

  rate       checks completed per second (passes and failures; failures are reported apart, and a run
             with failures does not count as sustained)
  lateness   how late each check started against its schedule: the previous start of the same watch plus
             the interval (the runner's rule); p50 and p99 over every check of the window
  latency    how long a probe took (p50, p99)
  CPU        the checker process's CPU time (user + system, every thread) / wall time; 1.00 = one core

Sustained = at least 97% of the target rate, no failed checks, and p99 lateness under 100 ms.

Peers (each in processes of their own, so that their CPU is not the checker's; their CPU is reported):
  connect     a Python asyncio TCP listener that accepts and closes
  http        a Python asyncio HTTP responder (200, 2-byte body)
  dicom-echo  --dicom-peers storescp processes (dcmtk, single-process, TCP_NODELAY=1), watches spread over them
  hl7         a Python asyncio MLLP responder acknowledging AA (string ops, no hl7 parsing)
  amqp        a RabbitMQ node of its own (Connection.Start only, no login)

Everything is on loopback, with free ports picked at run time. The machine has 2 cores: the checker and
its peers share them. Writes bench/results/<timestamp>-health.json and the section of bench/README.md
between ``<!-- results:health start -->`` and ``<!-- results:health end -->``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests" / "health"))

from lib.cli import split_choices  # noqa: E402
from lib.peers import PEER_CODE  # noqa: E402
from lib.procfs import cpu_seconds, descendants, threads_of_self  # noqa: E402
from lib.procs import bounded, kill_group  # noqa: E402
from lib.report import fmt, replace_section, stamp, utc_now, write_results  # noqa: E402
from lib.stats import nearest_rank as pct  # noqa: E402

CASES = {
    "connect": "TCP connect (asyncio)",
    "http": "HTTP GET (asyncio)",
    "dicom-echo": "DICOM association + C-ECHO + release (asyncio, pacslb codec)",
    "hl7": "HL7 NMQ over MLLP, AA (asyncio + hl7)",
    "amqp": "AMQP 0-9-1 up to Connection.Start (asyncio)",
}
INTERVAL = 1.0
LATE_P99_LIMIT = 0.100
RATE_SHARE = 0.97
MARK = "health"


# --- peers -------------------------------------------------------------------------------------


@dataclass
class Peers:
    """The peer processes of one case: targets to check, PIDs whose CPU is reported, and how to stop them."""

    targets: list[tuple[str, int]]
    pids: list[int] = field(default_factory=list)
    stoppers: list = field(default_factory=list)

    def stop(self) -> None:
        for stop in reversed(self.stoppers):
            try:
                stop()
            except Exception as exc:  # noqa: BLE001 - stop the others anyway
                print(f"warning: stopping a peer failed: {exc}", file=sys.stderr)


def start_peers(case: str, dicom_peers: int) -> Peers:
    from health_peers import DicomSCP, RabbitMQ, accepts, free_port, wait_until

    if case in ("connect", "http", "hl7"):
        port = free_port()
        kind = {"connect": "tcp", "http": "http", "hl7": "mllp"}[case]
        process = subprocess.Popen(bounded([sys.executable, "-c", PEER_CODE, kind, str(port)], 3600), start_new_session=True)
        peers = Peers([("127.0.0.1", port)], stoppers=[lambda: kill_group(process)])
        wait_until(lambda: accepts(port), what=f"the {kind} peer")
        peers.pids = [process.pid]
        return peers
    if case == "dicom-echo":
        peers = Peers([])
        try:
            for _ in range(dicom_peers):
                scp = DicomSCP("ARCHIVE")
                peers.stoppers.append(scp.stop)
                scp.start(lifetime=3600)
                peers.targets.append(("127.0.0.1", scp.port))
                peers.pids.append(scp.process.pid)
        except BaseException:
            peers.stop()
            raise
        return peers
    if case == "amqp":
        node = RabbitMQ()
        node.start(lifetime=3600)
        return Peers([("127.0.0.1", node.port)], pids=[node.server.pid], stoppers=[node.stop])
    raise SystemExit(f"unknown case {case}")


def tree_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) of these processes and their descendants so far."""
    return sum(cpu_seconds([pid, *descendants(pid)]) for pid in pids)


# --- the checker process -----------------------------------------------------------------------


def make_probe(case: str, timeout: float):
    from pacslb.health import AMQPProbe, ConnectProbe, DicomEchoProbe, HL7Probe, HTTPProbe

    return {
        "connect": lambda: ConnectProbe(timeout),
        "http": lambda: HTTPProbe(timeout),
        "dicom-echo": lambda: DicomEchoProbe(timeout, called_ae="ARCHIVE"),
        "hl7": lambda: HL7Probe(timeout),
        "amqp": lambda: AMQPProbe(timeout),
    }[case]()


class Timed:
    """Wraps one watch's probe: records when each check starts against its schedule, and how it ends."""

    def __init__(self, probe, stats: "Stats") -> None:
        self.inner, self.stats, self.timeout = probe, stats, probe.timeout
        self.last_start: float | None = None

    def joined(self) -> None:
        """The watch starts now: its first check is due now (the runner starts it at once)."""
        self.last_start = time.monotonic() - INTERVAL

    async def probe(self, target):
        start = time.monotonic()
        late = 0.0 if self.last_start is None else max(0.0, start - (self.last_start + INTERVAL))
        self.last_start = start
        result = await self.inner.probe(target)
        self.stats.record(late, time.monotonic() - start, result)
        return result


@dataclass
class Stats:
    measuring: bool = False
    late: list[float] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    passed: int = 0
    failed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def record(self, late: float, latency: float, result) -> None:
        if not self.measuring:
            return
        self.late.append(late)
        self.latency.append(latency)
        if result.up:
            self.passed += 1
        else:
            self.failed += 1
            self.reasons[result.reason] = self.reasons.get(result.reason, 0) + 1


async def worker(case: str, targets: list[tuple[str, int]], rate: float, duration: float, warmup: float, timeout: float) -> dict:
    from pacslb.health import Checker, Target, Watch

    stats = Stats()
    probe = make_probe(case, timeout)  # one probe shared by every watch, as the service shares one per service
    count = max(1, round(rate * INTERVAL))
    watches = [
        Watch((case, f"rs{i}"), Target(*targets[i % len(targets)]), Timed(probe, stats), INTERVAL, rise=2, fall=3)
        for i in range(count)
    ]

    async def on_change(watch) -> None:
        pass

    checker = Checker(on_change)
    batches = 20
    for b in range(1, batches + 1):  # join over the first interval: checks spread over the second
        for w in watches[count * (b - 1) // batches : count * b // batches]:
            w.probe.joined()
        checker.replace(watches[: count * b // batches])
        await asyncio.sleep(INTERVAL / batches)
    await asyncio.sleep(warmup)
    stats.measuring = True
    cpu0, wall0 = os.times(), time.monotonic()
    await asyncio.sleep(duration)
    cpu1, wall1 = os.times(), time.monotonic()
    stats.measuring = False
    await checker.close()
    wall = wall1 - wall0
    done = stats.passed + stats.failed
    return {
        "case": case,
        "target_rate": rate,
        "watches": count,
        "interval_s": INTERVAL,
        "timeout_s": timeout,
        "duration_s": wall,
        "checks": done,
        "rate": done / wall,
        "passed": stats.passed,
        "failed": stats.failed,
        "failure_reasons": dict(sorted(stats.reasons.items(), key=lambda kv: -kv[1])[:5]),
        "late_p50_ms": _ms(pct(stats.late, 0.50)),
        "late_p99_ms": _ms(pct(stats.late, 0.99)),
        "late_max_ms": _ms(max(stats.late) if stats.late else None),
        "latency_p50_ms": _ms(pct(stats.latency, 0.50)),
        "latency_p99_ms": _ms(pct(stats.latency, 0.99)),
        "cpu": ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / wall,
        "threads": threads_of_self(),
    }


def _ms(x: float | None) -> float | None:
    return None if x is None else round(x * 1000, 2)


def run_worker_process(
    case: str, targets, rate: float, duration: float, warmup: float, timeout: float, profile: Path | None, nice: int = 0
) -> dict:
    command = (["nice", "-n", str(nice)] if nice else []) + [sys.executable, str(Path(__file__).resolve()), "--worker", case, "--rate", str(rate),
               "--duration", str(duration), "--warmup", str(warmup), "--timeout", str(timeout),
               "--targets", json.dumps(targets)]  # fmt: skip
    if profile is not None:
        command += ["--profile", str(profile)]
    budget = duration + warmup + 60 + 3 * timeout
    out = subprocess.run(command, capture_output=True, text=True, timeout=budget, cwd=REPO)
    if out.returncode != 0:
        raise RuntimeError(f"checker process for {case} at {rate}/s failed ({out.returncode}): {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def sustained(run: dict) -> bool:
    return (
        run["rate"] >= RATE_SHARE * run["target_rate"]
        and run["failed"] == 0
        and run["late_p99_ms"] is not None
        and run["late_p99_ms"] < LATE_P99_LIMIT * 1000
    )


# --- the report --------------------------------------------------------------------------------


def _cpu_ms(run: dict) -> float | None:
    """The checker's CPU milliseconds per check: what a check costs, whatever else loads the machine."""
    return run["cpu"] * 1000 / run["rate"] if run["rate"] else None


def _per_core(run: dict) -> float | None:
    """Checks per second one fully available core would do at that cost (a projection, not a measurement)."""
    cost = _cpu_ms(run)
    return 1000 / cost if cost else None


def section(doc: dict) -> str:
    lines = [
        f"Run {doc['started']} on {doc['machine']['cpus']} CPUs ({doc['machine']['python']}); "
        f"{doc['duration_s']:g} s measured per run after {doc['warmup_s']:g} s of warm-up; interval 1 s, "
        f"one watch per simulated real server. Command: `{doc['command']}`. Load average of the (shared) "
        f"machine at start {doc['machine']['loadavg_at_start'][0]:.1f}, at end {doc['machine']['loadavg_at_end'][0]:.1f}; "
        f"checker process niceness {doc.get('checker_nice', 0)}. Raw numbers: `bench/results/{doc.get('file', '?')}`.",
        "",
        "| case | target /s | done /s | failed | late p50 ms | late p99 ms | latency p50 ms | latency p99 ms | checker CPU | CPU ms / check | checks/s per core | peers CPU | sustained |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["runs"]:
        lines.append(
            f"| {r['case']} | {r['target_rate']:g} | {r['rate']:.0f} | {r['failed']} | {fmt(r['late_p50_ms'], '.1f')} | "
            f"{fmt(r['late_p99_ms'], '.1f')} | {fmt(r['latency_p50_ms'], '.1f')} | {fmt(r['latency_p99_ms'], '.1f')} | "
            f"{r['cpu']:.2f} | {fmt(_cpu_ms(r), '.2f')} | {fmt(_per_core(r), ',.0f')} | {fmt(r.get('peers_cpu'), '.2f')} | "
            f"{'yes' if r['sustained'] else '**no**'} |"
        )
    lines += ["", "Highest sustained rate per case (of the rates tried):", ""]
    for case, best in doc["best"].items():
        lines.append(f"- {case}: {'none of the rates tried' if best is None else f'{best:g} checks/s'}")
    failures = [r for r in doc["runs"] if r["failure_reasons"]]
    if failures:
        lines += ["", "Reasons of failed checks (top ones):", ""]
        for r in failures:
            reasons = "; ".join(f"{n}x {reason}" for reason, n in r["failure_reasons"].items())
            lines.append(f"- {r['case']} at {r['target_rate']:g}/s: {reasons}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {','.join(CASES)}")
    parser.add_argument("--rates", default="500,1000,2000", help="target checks per second, comma-separated")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--timeout", type=float, default=2.0, help="the checks' timeout, seconds")
    parser.add_argument("--dicom-peers", type=int, default=8, help="storescp processes for dicom-echo")
    parser.add_argument(
        "--checker-nice",
        type=int,
        default=0,
        help="niceness of the checker process (negative needs root): keeps a busy shared machine from starving it",
    )
    parser.add_argument("--quick", action="store_true", help="2 s runs at 200/s, no README update")
    parser.add_argument("--results-dir", type=Path, default=HERE / "results")
    parser.add_argument("--readme", type=Path, default=HERE / "README.md")
    parser.add_argument("--no-readme", action="store_true")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="write the top functions by CPU (every thread; needs `pip install yappi`) of each checker process into this dir",
    )
    # the checker process
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--targets", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        targets = [tuple(t) for t in json.loads(args.targets)]
        coro = worker(args.worker, targets, args.rate, args.duration, args.warmup, args.timeout)
        if args.profile:
            import yappi  # every thread, CPU clock

            yappi.set_clock_type("cpu")
            yappi.start()
            result = asyncio.run(coro)
            yappi.stop()
            stats = yappi.get_func_stats()
            stats.sort("tsub")
            checks = max(1, result["checks"])
            lines = [f"{'self ms/check':>13} {'total ms/check':>14} {'calls/check':>11}  function"]
            for f in list(stats)[:40]:
                where = f.module.split("site-packages/")[-1]
                lines.append(
                    f"{f.tsub * 1000 / checks:13.3f} {f.ttot * 1000 / checks:14.3f} {f.ncall / checks:11.1f}  {where}:{f.name}"
                )
            args.profile.mkdir(parents=True, exist_ok=True)
            (args.profile / f"{args.worker}-{args.rate:g}.txt").write_text("\n".join(lines) + "\n")
        else:
            result = asyncio.run(coro)
        print(json.dumps(result))
        return 0

    cases = split_choices(args.cases, CASES, "case")
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    if args.quick:
        rates, args.duration, args.warmup, args.no_readme = [200.0], 2.0, 1.0, True
    doc = {
        "benchmark": "health",
        "started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(["bench/health_checks.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "kernel": platform.release(),
            "loadavg_at_start": os.getloadavg(),
        },
        "note": "the machine is shared: see loadavg_at_start/loadavg_at_end for the load of other processes",
        "checker_nice": args.checker_nice,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "rules": {"rate_share": RATE_SHARE, "late_p99_limit_ms": LATE_P99_LIMIT * 1000},
        "runs": [],
        "best": {},
    }
    for case in cases:
        missing = {"dicom-echo": "storescp", "amqp": "epmd"}.get(case)
        if missing and shutil.which(missing) is None:
            print(f"skipping {case}: {missing} is not installed", file=sys.stderr)
            continue
        peers = start_peers(case, args.dicom_peers)
        try:
            best = None
            for rate in rates:
                cpu0, t0 = tree_cpu(peers.pids), time.monotonic()
                run = run_worker_process(
                    case, peers.targets, rate, args.duration, args.warmup, args.timeout, args.profile, args.checker_nice
                )
                # The peers' CPU over the whole worker life (start-up included): an upper bound for the window.
                run["peers_cpu"] = (tree_cpu(peers.pids) - cpu0) / (time.monotonic() - t0)
                run["sustained"] = sustained(run)
                doc["runs"].append(run)
                print(
                    f"{case:10s} {rate:6g}/s: done {run['rate']:7.1f}/s failed {run['failed']:5d} "
                    f"late p50/p99 {fmt(run['late_p50_ms'], '.1f')}/{fmt(run['late_p99_ms'], '.1f')} ms "
                    f"cpu {run['cpu']:.2f} peers {run['peers_cpu']:.2f} {'ok' if run['sustained'] else 'BEHIND'}",
                    flush=True,
                )
                if run["sustained"]:
                    best = rate
            doc["best"][case] = best
        finally:
            peers.stop()
    doc["machine"]["loadavg_at_end"] = os.getloadavg()
    doc["file"] = f"{stamp(utc_now())}-health.json"
    out = write_results(args.results_dir, doc["file"], doc)
    print(f"results: {out}")
    if not args.no_readme:
        replace_section(args.readme, MARK, section(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
