"""bench/gslb.py works: its helpers, and one tiny run (1 s of dnsperf per case, one failover) in its own bed.

No timed assertion on queries per second (the machine is shared): the smoke run proves that every case was
answered (the expected address and ECS scope, checked before each dnsperf run), that dnsperf completed queries
without losing more than a few, and that a failing site changed the answer.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load_bench():
    spec = importlib.util.spec_from_file_location("pacslb_bench_gslb", REPO / "bench" / "gslb.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


def test_ecs_option_and_dnsperf_summary():
    assert bench.ecs_option("10.61.0.0", 24) == "8:000118000a3d00"
    assert bench.ecs_option("10.61.0.0", 16) == "8:000110000a3d"
    text = ("  Queries sent:         1000\n  Queries completed:    998 (99.80%)\n  Queries lost:         2 (0.20%)\n"
            "  Queries per second:   21234.5\n  Average Latency (s):  0.000512 (min 0.000020, max 0.003)\n")  # fmt: skip
    assert bench.parse_dnsperf(text) == {"qps": 21234.5, "completed": 998, "lost": 2, "latency_ms": 0.512}


def _bench_namespaces(pid: int) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(f"pacslb-bench-{pid}-")]


@pytest.mark.slow
@pytest.mark.netns
@pytest.mark.root
@pytest.mark.engine
def test_tiny_gslb_run(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    assert shutil.which("dnsperf"), "dnsperf is not installed (make deps)"
    readme = tmp_path / "README.md"
    bench_run = subprocess.Popen([sys.executable, str(REPO / "bench" / "gslb.py"), "--seconds", "1", "--failovers", "1",
                                  "--results-dir", str(tmp_path), "--readme", str(readme)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        out, err = bench_run.communicate(timeout=400)
    finally:
        if bench_run.poll() is None:
            bench_run.kill()  # by its PID; the bed's own teardown (SIGTERM is an interrupt there) did not get to run
            bench_run.wait(30)
    assert bench_run.returncode == 0, out + err[-4000:]
    [result] = tmp_path.glob("*-gslb.json")
    doc = json.loads(result.read_text())
    assert [c["case"] for c in doc["cases"]] == [c[0] for c in bench.CASES]
    for case in doc["cases"]:
        assert case["qps"] > 0 and case["completed"] > 0 and case["lost"] <= case["completed"] * 0.01, case
    [failover] = doc["failovers"]
    assert failover["down_s"] is not None and failover["back_s"] is not None
    assert "<!-- results:gslb start -->" in readme.read_text() and "queries/s" in readme.read_text()
    assert _bench_namespaces(bench_run.pid) == [], "the bench left namespaces behind"
