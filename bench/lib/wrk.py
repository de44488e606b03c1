"""Running wrk and reading its reports: the command line, the JSON line bench/wrk-report.lua prints, their medians."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib.stats import median

LUA_REPORT = Path(__file__).resolve().parents[1] / "wrk-report.lua"
SOCKET_ERRORS = ("connect", "read", "write", "timeout")


@dataclass(frozen=True)
class Workload:
    """One kind of load wrk puts on a target: a path, a number of connections, keep-alive or not."""

    name: str
    path: str
    connections: int
    close: bool  # a new connection per request (wrk -H 'Connection: close')
    description: str

    def parameters(self) -> dict[str, Any]:
        """The workload as a results file records it (every field but the name)."""
        return {k: v for k, v in vars(self).items() if k != "name"}


def wrk_command(url: str, workload: Workload, duration: int, threads: int = 1) -> list[str]:
    """wrk for `duration` whole seconds against `url`, reporting through bench/wrk-report.lua."""
    cmd = [
        "wrk", "-t", str(threads), "-c", str(workload.connections), "-d", f"{int(duration)}s",
        "--timeout", "10s", "-s", str(LUA_REPORT),
    ]  # fmt: skip
    if workload.close:
        cmd += ["-H", "Connection: close"]
    return cmd + [url]


def parse_wrk(stdout: str) -> dict[str, Any]:
    """The WRK_JSON line that bench/wrk-report.lua prints, with req/s, MiB/s and socket errors added."""
    for line in stdout.splitlines():
        if line.startswith("WRK_JSON "):
            data = json.loads(line[len("WRK_JSON ") :])
            seconds = data["duration_us"] / 1e6 or 1e-9
            data["rps"] = data["requests"] / seconds
            data["mib_per_s"] = data["bytes"] / seconds / (1 << 20)
            data["socket_errors"] = sum(data["errors"][k] for k in SOCKET_ERRORS)
            return data
    raise ValueError(f"no WRK_JSON line in wrk output:\n{stdout}")


def errors(runs: list[dict[str, Any]]) -> int:
    """Socket errors and error statuses (>= 400) of these wrk runs together."""
    return sum(r["socket_errors"] + r["errors"]["status"] for r in runs)


def report_of(completed: Any, what: str) -> dict[str, Any]:
    """The report of a finished wrk (a subprocess.CompletedProcess with text output); a failed wrk stops the run."""
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed ({completed.returncode}) {what}:\n{completed.stdout}{completed.stderr}")
    return parse_wrk(completed.stdout)


def medians(runs: list[dict[str, Any]], latencies: tuple[str, ...] = ("p50", "p99")) -> dict[str, Any]:
    """What the repeated wrk runs of one case show: their number, median req/s (and each), MiB/s and latencies."""
    return {
        "samples": len(runs),
        "rps": median(r["rps"] for r in runs),
        "rps_all": [round(r["rps"], 1) for r in runs],
        "mib_per_s": median(r["mib_per_s"] for r in runs),
        **{f"{p}_ms": median(r["latency_us"][p] / 1000 for r in runs) for p in latencies},
    }


def totals(runs: list[dict[str, Any]]) -> dict[str, int]:
    """Requests, socket errors and error statuses (>= 400) of these wrk runs, summed."""
    return {
        "requests": sum(r["requests"] for r in runs),
        "socket_errors": sum(r["socket_errors"] for r in runs),
        "non_2xx_3xx": sum(r["errors"]["status"] for r in runs),
    }
