#!/usr/bin/env python3
"""Health-check benchmark: checks per second the checker sustains without falling behind its schedule.

    .venv/bin/python bench/health_checks.py                       # every case at 500, 1000, 2000 checks/s
    .venv/bin/python bench/health_checks.py --cases dicom-echo --rates 250,500,1000 --duration 10
    .venv/bin/python bench/health_checks.py --cases dicom-echo --rates 3000 --workers 1,2 --checker-nice -10
    .venv/bin/python bench/health_checks.py --quick               # smoke: 2 s, one rate; README untouched

For each case, rate and worker count, a checker process of its own (this script with --worker) runs pacslb's
real `Checker` with N = rate x interval watches (one per simulated real server, interval 1 s, rise 2, fall 3),
each with the case's real probe: in that process with --workers 1 (settings.health.workers: 1), or, with
more, through the appliance's `WorkerPool` in worker processes (`pacslb.health.worker`, started as this
script with --pool-worker, which only wraps each probe to time it). The watches join in 20 batches over the
first interval. Once every watch was checked once, after a warm-up, it measures for --duration seconds:

  rate       checks completed per second (passes and failures; failures are reported apart, and a run
             with failures does not count as sustained)
  lateness   how late each check started against its schedule: the previous start of the same watch plus
             the interval (the runner's rule); p50 and p99 over every check of the window
  latency    how long a probe took (p50, p99)
  CPU        the checker process's CPU time (user + system, every thread), and its workers', / wall time;
             1.00 = one core

Sustained = at least 97% of the target rate, no failed checks, and p99 lateness under 100 ms.

Peers (each in processes of their own, so that their CPU is not the checker's; their CPU is reported):
  connect     a Python asyncio TCP listener that accepts and closes
  http        a Python asyncio HTTP responder (200, 2-byte body)
  dicom-echo  --dicom-peers storescp processes (dcmtk, single-process, TCP_NODELAY=1), watches spread over them
              (each serves one association at a time: at 3,000 checks/s take 64 or more)
  hl7         a Python asyncio MLLP responder acknowledging AA (string ops, no hl7 parsing)
  amqp        a RabbitMQ node of its own (Connection.Start only, no login)

Everything is on loopback, with free ports picked at run time. The machine has 2 cores: the checker and
its peers share them. --checker-nice and --peers-nice also set the niceness of their sessions' scheduler
autogroups (a process's own niceness counts only within its session where the kernel groups by session). Writes bench/results/<timestamp>-health.json and the section of bench/README.md
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
import tempfile
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
STATS_ENV = "PACSLB_BENCH_STATS"  # the directory where each worker process writes its records
PROFILE_ENV = "PACSLB_BENCH_PROFILE"  # the directory where each worker process writes its profile (--profile)
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


def autogroup_nice(pid: int, nice: int) -> None:
    """Set the niceness of the scheduler autogroup of `pid` (its session), where the kernel groups by session
    (kernel.sched_autogroup_enabled): there a process's own niceness counts only against its own session, and a
    busy shared machine's other sessions take their fair share whatever it says."""
    try:
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))
    except OSError as exc:
        print(f"warning: autogroup niceness of {pid} not set: {exc}", file=sys.stderr)


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

    async def probe(self, target):
        start = time.monotonic()
        # a watch's first check is placed by the runner's spread (first_check_delay), not by the interval: no lateness
        late = None if self.last_start is None else max(0.0, start - (self.last_start + INTERVAL))
        self.last_start = start
        result = await self.inner.probe(target)
        self.stats.record(start, late, time.monotonic() - start, result)
        return result


@dataclass
class Stats:
    """Every check: (start, lateness, latency, up, reason when down). Starts are time.monotonic(), one clock for
    every process of a run, so that the window is chosen afterwards, once every watch runs in its process."""

    records: list[tuple] = field(default_factory=list)

    def record(self, start: float, late: float | None, latency: float, result) -> None:
        self.records.append((start, late, latency, result.up, None if result.up else result.reason))


def summary(records: list, t0: float, t1: float) -> dict:
    """The figures of the checks that started in [t0, t1)."""
    inside = [r for r in records if t0 <= r[0] < t1]
    reasons: dict[str, int] = {}
    for r in inside:
        if not r[3]:
            reasons[r[4]] = reasons.get(r[4], 0) + 1
    late = [r[1] for r in inside if r[1] is not None]
    latency = [r[2] for r in inside]
    passed = sum(1 for r in inside if r[3])
    return {
        "checks": len(inside),
        "passed": passed,
        "failed": len(inside) - passed,
        "failure_reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])[:5]),
        "late_p50_ms": _ms(pct(late, 0.50)),
        "late_p99_ms": _ms(pct(late, 0.99)),
        "late_max_ms": _ms(max(late) if late else None),
        "latency_p50_ms": _ms(pct(latency, 0.50)),
        "latency_p99_ms": _ms(pct(latency, 0.99)),
    }


async def worker(
    case: str, targets: list[tuple[str, int]], rate: float, duration: float, warmup: float, timeout: float, workers: int = 1
) -> dict:
    """The checker as the appliance runs it: with 1 worker, runner.Checker in this process (the health service's
    in-controller mode); with more, this process is the controller's side (health.workers.WorkerPool, as the
    health service builds it) and the checks run in worker processes (pacslb.health.worker's own loop, started
    as `--pool-worker`, which only wraps each probe to time it).

    The window opens `warmup` seconds after every watch was checked once (after the worker processes started and
    the watches' first checks, spread over one interval), and lasts `duration` seconds."""
    from pacslb.health import Checker, Target, Watch
    from pacslb.health.workers import WorkerPool

    stats = Stats()
    probe = make_probe(case, timeout)  # one probe shared by every watch, as the service shares one per service
    count = max(1, round(rate * INTERVAL))
    targets_of = [Target(*targets[i % len(targets)]) for i in range(count)]
    stats_dir = Path(tempfile.mkdtemp(prefix="pacslb-bench-health-"))
    if workers == 1:
        watches = [Watch((case, f"rs{i}"), targets_of[i], Timed(probe, stats), INTERVAL, rise=2, fall=3) for i in range(count)]

        async def on_change(watch) -> None:
            pass

        checker = Checker(on_change)
        join, close, known = (lambda part: checker.replace(part)), checker.close, checker.watches
    else:
        os.environ[STATS_ENV] = str(stats_dir)  # the worker processes inherit where to write their figures
        watches = [Watch((case, f"rs{i}"), targets_of[i], probe, INTERVAL, rise=2, fall=3) for i in range(count)]

        async def pushed(key, up) -> None:
            pass

        pool = WorkerPool(pushed, command=[sys.executable, str(Path(__file__).resolve()), "--pool-worker"])
        join, close, known = (lambda part: pool.replace(part, workers)), pool.close, pool.seen
    batches = 20
    for b in range(1, batches + 1):  # join over the first interval, as a configuration's watches would
        join(watches[: count * b // batches])
        await asyncio.sleep(INTERVAL / batches)
    ready_by = time.monotonic() + 3 * INTERVAL + timeout + 30
    while time.monotonic() < ready_by and any(w.last is None for w in list(known.values())):
        await asyncio.sleep(0.05)
    t0 = time.monotonic() + warmup
    t1 = t0 + duration
    await asyncio.sleep(warmup)
    me = os.getpid()
    cpu0, kids0, wall0 = os.times(), cpu_seconds(descendants(me)), time.monotonic()
    await asyncio.sleep(max(0.0, t1 - time.monotonic()))
    cpu1, kids1, wall1 = os.times(), cpu_seconds(descendants(me)), time.monotonic()
    await asyncio.sleep(timeout + 0.2)  # every check that started in the window ends (or times out)
    await close()
    records = list(stats.records)
    reports = list(stats_dir.glob("*.json"))
    for part in reports:  # the workers' own records (they wrote them as they ended)
        records += [tuple(r) for r in json.loads(part.read_text())]
    shutil.rmtree(stats_dir, ignore_errors=True)
    wall = wall1 - wall0
    figures = summary(records, t0, t1)
    own = ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / wall
    return {
        "case": case,
        "workers": workers,
        "worker_reports": len(reports) if workers > 1 else None,
        "target_rate": rate,
        "watches": count,
        "interval_s": INTERVAL,
        "timeout_s": timeout,
        "duration_s": t1 - t0,
        **figures,
        "rate": figures["checks"] / (t1 - t0),  # the checks that started in the window, whenever this loop woke
        "cpu": own + (kids1 - kids0) / wall,  # the controller's side and every worker process
        "controller_cpu": own if workers > 1 else None,
        "threads": threads_of_self(),
    }


def pool_worker(index: int, profile: Path | None) -> int:
    """A check worker of the bench: pacslb.health.worker itself, each probe wrapped in Timed as it arrives (the
    same Timed for the same watch, so that Checker.replace sees an unchanged watch); its records are written
    to STATS_ENV/<index>.json when it ends."""
    import pacslb.health.worker as check_worker

    stats = Stats()
    timed: dict = {}
    decode = check_worker.decode_watches

    def timed_watches(line: bytes):
        gen, watches = decode(line)
        for watch in watches:
            wrapped = timed.get(watch.key)
            if wrapped is None or wrapped.inner != watch.probe:
                wrapped = timed[watch.key] = Timed(watch.probe, stats)
            watch.probe = wrapped
        return gen, watches

    check_worker.decode_watches = timed_watches  # the bench's one seam: timing, nothing else changes
    if profile is not None:
        import yappi

        yappi.set_clock_type("cpu")
        yappi.start()
    status = check_worker.main([str(index)])
    if profile is not None:
        yappi.stop()
        write_profile(profile / f"worker{index}.txt", len(stats.records))
    (Path(os.environ[STATS_ENV]) / f"{index}.json").write_text(json.dumps(stats.records))
    return status


def write_profile(path: Path, checks: int) -> None:
    """The top functions by CPU (yappi, every thread), per check."""
    import yappi

    stats = yappi.get_func_stats()
    stats.sort("tsub")
    checks = max(1, checks)
    lines = [f"{'self ms/check':>13} {'total ms/check':>14} {'calls/check':>11}  function"]
    for f in list(stats)[:40]:
        where = f.module.split("site-packages/")[-1]
        lines.append(f"{f.tsub * 1000 / checks:13.3f} {f.ttot * 1000 / checks:14.3f} {f.ncall / checks:11.1f}  {where}:{f.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def _ms(x: float | None) -> float | None:
    return None if x is None else round(x * 1000, 2)


def run_worker_process(
    case: str, targets, rate: float, duration: float, warmup: float, timeout: float, profile: Path | None, nice: int = 0,
    workers: int = 1,
) -> dict:  # fmt: skip
    command = (["nice", "-n", str(nice)] if nice else []) + [sys.executable, str(Path(__file__).resolve()), "--worker", case, "--rate", str(rate),
               "--duration", str(duration), "--warmup", str(warmup), "--timeout", str(timeout),
               "--targets", json.dumps(targets), "--workers", str(workers)]  # fmt: skip
    if profile is not None:
        command += ["--profile", str(profile)]
    budget = duration + warmup + 60 + 3 * timeout
    # a session of its own: its own scheduler autogroup, whose niceness it sets (--checker-nice), workers included
    out = subprocess.run(command + ["--checker-nice", str(nice)], capture_output=True, text=True, timeout=budget, cwd=REPO,
                         start_new_session=True)  # fmt: skip
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
        f"checker process niceness {doc.get('checker_nice', 0)}, peers {doc.get('peers_nice', 0)}. Raw numbers: `bench/results/{doc.get('file', '?')}`.",
        "",
        "| case | workers | target /s | done /s | failed | late p50 ms | late p99 ms | latency p50 ms | latency p99 ms | checker CPU (controller) | CPU ms / check | checks/s per core | peers CPU | sustained |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["runs"]:
        controller = f" ({r['controller_cpu']:.2f})" if r.get("controller_cpu") is not None else ""
        lines.append(
            f"| {r['case']} | {r.get('workers', 1)} | {r['target_rate']:g} | {r['rate']:.0f} | {r['failed']} | {fmt(r['late_p50_ms'], '.1f')} | "
            f"{fmt(r['late_p99_ms'], '.1f')} | {fmt(r['latency_p50_ms'], '.1f')} | {fmt(r['latency_p99_ms'], '.1f')} | "
            f"{r['cpu']:.2f}{controller} | {fmt(_cpu_ms(r), '.2f')} | {fmt(_per_core(r), ',.0f')} | {fmt(r.get('peers_cpu'), '.2f')} | "
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
            lines.append(f"- {r['case']} at {r['target_rate']:g}/s, {r.get('workers', 1)} worker(s): {reasons}")
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
        help="niceness of the checker process and of its session's scheduler autogroup (negative needs root): keeps "
        "a busy shared machine from starving it",
    )
    parser.add_argument(
        "--workers",
        default="1",
        help="check workers, comma-separated (each rate is run with each): 1 = the checks in one process, as "
        "settings.health.workers: 1; N = the controller's side and N worker processes, as the appliance runs them",
    )
    parser.add_argument(
        "--peers-nice",
        type=int,
        default=0,
        help="niceness of the peer processes (negative needs root): on a busy shared machine, peers starved of CPU "
        "answer late and become what is measured",
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
    # the checker process, and its check workers
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--pool-worker", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--targets", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.pool_worker is not None:
        profile = Path(os.environ[PROFILE_ENV]) if os.environ.get(PROFILE_ENV) else None
        return pool_worker(args.pool_worker, profile)
    if args.worker:
        if args.checker_nice:
            autogroup_nice(os.getpid(), args.checker_nice)
        targets = [tuple(t) for t in json.loads(args.targets)]
        workers = int(args.workers)
        coro = worker(args.worker, targets, args.rate, args.duration, args.warmup, args.timeout, workers)
        run_dir = None if args.profile is None else args.profile / f"{args.worker}-{args.rate:g}-w{workers}"
        if run_dir is not None and workers > 1:
            os.environ[PROFILE_ENV] = str(run_dir)  # each worker profiles itself
            result = asyncio.run(coro)
        elif run_dir is not None:
            import yappi  # every thread, CPU clock

            yappi.set_clock_type("cpu")
            yappi.start()
            result = asyncio.run(coro)
            yappi.stop()
            write_profile(run_dir / "checker.txt", result["checks"])
        else:
            result = asyncio.run(coro)
        print(json.dumps(result))
        return 0

    cases = split_choices(args.cases, CASES, "case")
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    worker_counts = [int(w) for w in args.workers.split(",") if w.strip()]
    if not worker_counts or min(worker_counts) < 1:
        raise SystemExit("--workers: comma-separated counts of 1 or more")
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
        "peers_nice": args.peers_nice,
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
        if args.peers_nice:
            for pid in peers.pids:
                for each in [pid, *descendants(pid)]:
                    os.setpriority(os.PRIO_PROCESS, each, args.peers_nice)
                    autogroup_nice(each, args.peers_nice)
        try:
            best = None
            for rate, workers in [(r, w) for r in rates for w in worker_counts]:
                cpu0, t0 = tree_cpu(peers.pids), time.monotonic()
                run = run_worker_process(
                    case, peers.targets, rate, args.duration, args.warmup, args.timeout, args.profile, args.checker_nice,
                    workers,
                )  # fmt: skip
                # The peers' CPU over the whole worker life (start-up included): an upper bound for the window.
                run["peers_cpu"] = (tree_cpu(peers.pids) - cpu0) / (time.monotonic() - t0)
                run["sustained"] = sustained(run)
                doc["runs"].append(run)
                print(
                    f"{case:10s} {workers}w {rate:6g}/s: done {run['rate']:7.1f}/s failed {run['failed']:5d} "
                    f"late p50/p99 {fmt(run['late_p50_ms'], '.1f')}/{fmt(run['late_p99_ms'], '.1f')} ms "
                    f"cpu {run['cpu']:.2f} peers {run['peers_cpu']:.2f} {'ok' if run['sustained'] else 'BEHIND'}",
                    flush=True,
                )
                if run["sustained"]:
                    best = rate if best is None else max(best, rate)
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
