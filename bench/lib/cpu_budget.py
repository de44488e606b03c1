"""An equal CPU budget for groups of processes (the nodes of bench/cluster.py): the kernel's CFS bandwidth control.

cgroup v2's `cpu.max` ("QUOTA PERIOD") where the cpu controller is on the unified hierarchy; where it is not
(a hybrid mount: cgroup v2 at /sys/fs/cgroup/unified without controllers, cpu on a v1 hierarchy, as on this
machine), cgroup v1's `cpu.cfs_quota_us` / `cpu.cfs_period_us`, which is the same bandwidth controller of the
scheduler. `detect()` says which it found, and why.

    with CpuBudget("pacslb-bench-1234", percent=20) as budget:
        proc = subprocess.Popen(cmd, preexec_fn=budget.preexec("lb1"))   # the child and its children are in lb1
        budget.stat("lb1")   # {"nr_periods": .., "nr_throttled": .., "throttled_s": ..}
        budget.set_percent(None)   # no limit (e.g. for a reference run)

Groups are created under a parent named after the caller; `close()` removes them (the processes must have
ended by then: the caller stops them by PID first).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000


@dataclass(frozen=True)
class Backend:
    kind: str  # "v2" or "v1"; "" when neither can limit CPU here
    root: Path | None
    note: str


def _mount_points() -> dict[Path, tuple[str, set[str]]]:
    """Mount point -> (file system type, options) of the cgroup file systems."""
    found: dict[Path, tuple[str, set[str]]] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 4 and parts[2] in ("cgroup", "cgroup2"):
                found[Path(parts[1])] = (parts[2], set(parts[3].split(",")))
    return found


def detect(root: Path = ROOT) -> Backend:
    """Which CFS bandwidth control this machine offers: cgroup v2's cpu.max, else v1's cfs quota, else none."""
    mounts = _mount_points()
    v2_places = [p for p, (fs, _) in mounts.items() if fs == "cgroup2"]
    for place in v2_places:
        controllers = (place / "cgroup.controllers").read_text().split() if (place / "cgroup.controllers").exists() else []
        if "cpu" in controllers:
            return Backend("v2", place, f"cgroup v2 at {place}: cpu.max")
    v2_words = (
        f"cgroup v2 is mounted at {', '.join(map(str, v2_places))} without the cpu controller"
        if v2_places
        else "cgroup v2 is not mounted"
    )
    if not (root / "cgroup.controllers").exists():
        v2_words += f" ({root}/cgroup.controllers does not exist: {root} is not a cgroup v2 mount)"
    for place, (fs, options) in mounts.items():
        if fs == "cgroup" and "cpu" in options and (place / "cpu.cfs_quota_us").exists():
            return Backend("v1", place, f"{v2_words}; the cpu controller is on cgroup v1 at {place}: cpu.cfs_quota_us "
                                        "and cpu.cfs_period_us (the same CFS bandwidth control as v2's cpu.max)")  # fmt: skip
    return Backend("", None, f"{v2_words}, and no cgroup v1 cpu controller either: no CPU budget can be set")


class CpuBudget:
    """Groups with an equal CFS bandwidth limit each: `percent` of one CPU per group."""

    def __init__(self, name: str, percent: float | None, period_us: int = PERIOD_US, backend: Backend | None = None) -> None:
        self.backend = backend or detect()
        if not self.backend.kind:
            raise RuntimeError(self.backend.note)
        assert self.backend.root is not None
        self.parent = self.backend.root / name
        self.period_us = period_us
        self.percent = percent
        self.groups: dict[str, Path] = {}
        self.parent.mkdir()
        if self.backend.kind == "v2":
            self._enable_cpu(self.backend.root)
            self._enable_cpu(self.parent)

    @staticmethod
    def _enable_cpu(group: Path) -> None:
        control = group / "cgroup.subtree_control"
        if "cpu" not in control.read_text().split():
            control.write_text("+cpu")

    def group(self, name: str) -> Path:
        """The group `name`, created with the budget on first use."""
        if name not in self.groups:
            path = self.parent / name
            path.mkdir()
            self.groups[name] = path
            self._write_limit(path, self.percent)
        return self.groups[name]

    def set_percent(self, percent: float | None) -> None:
        """A new budget for every group (None: no limit)."""
        self.percent = percent
        for path in self.groups.values():
            self._write_limit(path, percent)

    def _write_limit(self, path: Path, percent: float | None) -> None:
        quota = -1 if percent is None else max(1000, int(self.period_us * percent / 100))
        if self.backend.kind == "v2":
            (path / "cpu.max").write_text(f"{'max' if quota < 0 else quota} {self.period_us}")
        else:
            (path / "cpu.cfs_period_us").write_text(str(self.period_us))
            (path / "cpu.cfs_quota_us").write_text(str(quota))

    def limit(self, name: str) -> str:
        """The limit as the kernel shows it ("20000 100000", or v1's "quota/period")."""
        path = self.group(name)
        if self.backend.kind == "v2":
            return (path / "cpu.max").read_text().strip()
        return f"{(path / 'cpu.cfs_quota_us').read_text().strip()}/{(path / 'cpu.cfs_period_us').read_text().strip()}"

    def preexec(self, name: str) -> Callable[[], None]:
        """preexec_fn: the child joins the group `name` before it runs its program."""
        procs = self.group(name) / "cgroup.procs"

        def join() -> None:
            procs.write_text(str(os.getpid()))

        return join

    def stat(self, name: str) -> dict[str, float]:
        """Periods, throttled periods and throttled seconds of the group so far (cpu.stat)."""
        values: dict[str, int] = {}
        for line in (self.group(name) / "cpu.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            with contextlib.suppress(ValueError):
                values[key] = int(value)
        throttled = values.get("throttled_usec", 0) / 1e6 if self.backend.kind == "v2" else values.get("throttled_time", 0) / 1e9
        return {"nr_periods": values.get("nr_periods", 0), "nr_throttled": values.get("nr_throttled", 0),
                "throttled_s": throttled}  # fmt: skip

    def members(self, name: str) -> list[int]:
        return [int(pid) for pid in (self.group(name) / "cgroup.procs").read_text().split()]

    def close(self) -> None:
        """Remove the groups and their parent, once their processes (stopped by the caller) are gone: up to 10 s."""
        deadline = time.monotonic() + 10
        for path in self.groups.values():
            while (path / "cgroup.procs").exists() and (path / "cgroup.procs").read_text().strip():
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)  # a worker exiting after its master was reaped
            with contextlib.suppress(OSError):
                path.rmdir()
        with contextlib.suppress(OSError):
            self.parent.rmdir()
        self.groups.clear()

    def __enter__(self) -> "CpuBudget":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
