"""Facts about the machine and the software a benchmark measured: CPUs, kernel, load, tool and pacslb versions."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[2]


def first_line(cmd: list[str]) -> str:
    """The first line a command prints (stdout, else stderr), or "unknown"."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = (r.stdout or r.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def machine_info() -> dict[str, Any]:
    """CPU count (and how many this process may use), CPU model, kernel, load average now."""
    return {
        "nproc": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model(),
        "kernel": platform.release(),
        "loadavg_at_end": os.getloadavg(),
    }


def _wrk_version() -> str:
    wrk = first_line(["wrk", "--version"])
    return wrk.split()[1] if wrk.startswith("wrk ") else wrk


TOOL_VERSIONS: dict[str, Callable[[], str]] = {
    "haproxy": lambda: " ".join(first_line(["haproxy", "-v"]).split()[:3]),  # "HAProxy version 2.6.12-1+deb12u4"
    "nginx": lambda: first_line(["nginx", "-v"]).split("/", 1)[-1],
    "nft": lambda: first_line(["nft", "--version"]),
    "wrk": _wrk_version,
}


def git_state() -> tuple[str, bool | None]:
    """The checkout's commit, and whether it has uncommitted changes (None: git could not tell)."""
    commit = first_line(["git", "-C", str(REPO), "rev-parse", "HEAD"])
    try:
        dirty = bool(subprocess.run(["git", "-C", str(REPO), "status", "--porcelain"], capture_output=True,
                                    text=True, timeout=10).stdout.strip())  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        dirty = None
    return commit, dirty


def versions(tools: tuple[str, ...] = ("haproxy", "nginx", "wrk")) -> dict[str, Any]:
    """The versions of these tools (keys of TOOL_VERSIONS), of pacslb and Python, and the git commit."""
    from pacslb import __version__ as pacslb_version

    commit, dirty = git_state()
    return {
        **{tool: TOOL_VERSIONS[tool]() for tool in tools},
        "pacslb": pacslb_version,
        "python": platform.python_version(),
        "git_commit": commit,
        "git_dirty": dirty,
    }


def haproxy_version() -> str:
    """HAProxy's version number alone ("2.6.12-1+deb12u4"), or "unknown"."""
    try:
        out = subprocess.run(["haproxy", "-v"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return "unknown"
    return out.split()[2] if out.startswith("HAProxy version") else "unknown"


def require_tools(tools: tuple[str, ...], install: str) -> None:
    """Stop the run, saying what to install, if one of these programs is not on PATH."""
    for tool in tools:
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed ({install})")
