"""Readings of /proc: CPU time of processes and of each CPU, a process's children and memory."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

USER_HZ = os.sysconf("SC_CLK_TCK")
CPU_KINDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
BUSY = ("user", "nice", "system", "irq", "softirq")  # guest time is already inside user


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (field 3 on), or None once the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def ppid(pid: int) -> int | None:
    """The parent of a process (None once it is gone)."""
    f = stat_fields(pid)
    return int(f[1]) if f else None


def process_times(pids: list[int]) -> tuple[float, float]:
    """(utime, stime) of these processes, every thread, in seconds."""
    user = system = 0
    for pid in pids:
        f = stat_fields(pid)
        if f:
            user, system = user + int(f[11]), system + int(f[12])
    return user / USER_HZ, system / USER_HZ


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (all their threads), in seconds."""
    ticks = 0
    for pid in pids:
        f = stat_fields(pid)
        if f:
            ticks += int(f[11]) + int(f[12])  # utime, stime
    return ticks / USER_HZ


def run_seconds(pids: list[int]) -> float:
    """Time these processes' threads spent on a CPU, in seconds, to the nanosecond (/proc/PID/task/TID/schedstat).

    Finer than cpu_seconds' clock ticks (10 ms), which a process busy a few percent of a short run makes coarse.
    """
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError, ValueError, IndexError):
                    with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                        total += int(f.read().split()[0])
    return total / 1e9


def children_of(pids: list[int]) -> list[int]:
    """Direct children of these processes (nginx's workers)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            f = stat_fields(int(entry))
            if f and int(f[1]) in pids:
                found.append(int(entry))
    return found


def descendants(pid: int) -> list[int]:
    """Every process below this one, children of children included."""
    parents = {pid}
    found: list[int] = []
    changed = True
    while changed:
        changed = False
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) in parents:
                continue
            f = stat_fields(int(entry))
            if f and int(f[1]) in parents:
                parents.add(int(entry))
                found.append(int(entry))
                changed = True
    return found


def rss_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in KiB (empty once it is gone)."""
    found = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0])
    except OSError:
        pass
    return found


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent in processes (every CPU, /proc/stat; interrupts left out), in seconds."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = f
    return (user + nice + system + steal) / USER_HZ


def cpu_times() -> dict[str, dict[str, float]]:
    """/proc/stat per CPU ("cpu" is the sum): seconds of each kind."""
    out: dict[str, dict[str, float]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if not line.startswith("cpu"):
            continue
        parts = line.split()
        out[parts[0]] = {k: int(v) / USER_HZ for k, v in zip(CPU_KINDS, parts[1:], strict=False)}
    return out


def cpu_delta(before: dict, after: dict, cpu: str) -> dict[str, float]:
    """Seconds of each kind one CPU of cpu_times() spent between two readings, and "busy" (BUSY together)."""
    d = {k: after[cpu][k] - before[cpu][k] for k in CPU_KINDS}
    d["busy"] = sum(d[k] for k in BUSY)
    return d


def net_rx_softirqs() -> list[int]:
    """/proc/softirqs: NET_RX softirqs handled so far, per CPU (a check that RPS steers where it should)."""
    for line in Path("/proc/softirqs").read_text().splitlines():
        if line.strip().startswith("NET_RX:"):
            return [int(x) for x in line.split()[1:]]
    return []


def interrupts() -> dict[str, list[int]]:
    """/proc/interrupts: function-call (CAL: RPS hands packets to another CPU with these) and rescheduling IPIs per CPU."""
    out = {}
    for line in Path("/proc/interrupts").read_text().splitlines():
        name, _, rest = line.strip().partition(":")
        if name in ("CAL", "RES"):
            out[name] = [int(x) for x in rest.split() if x.isdigit()][: os.cpu_count() or 1]
    return out


def threads_of_self() -> int:
    """Threads of this process (0 when /proc does not say)."""
    try:
        return int(next(ln.split()[1] for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith("Threads:")))
    except (OSError, StopIteration):
        return 0
