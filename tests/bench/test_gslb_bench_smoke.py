"""bench/gslb.py works: its helpers, and one tiny run (1 s of dnsperf per case, one failover) in its own bed.

No timed assertion on queries per second (the machine is shared): the smoke run proves that every case was
answered (the expected address and ECS scope, checked before each dnsperf run), that dnsperf completed queries
without losing more than a few, and that a failing site changed the answer.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from bench_support import load_bench, namespaces_of, run_bench

bench = load_bench("gslb.py")


def test_ecs_option_and_dnsperf_summary():
    assert bench.ecs_option("10.61.0.0", 24) == "8:000118000a3d00"
    assert bench.ecs_option("10.61.0.0", 16) == "8:000110000a3d"
    text = ("  Queries sent:         1000\n  Queries completed:    998 (99.80%)\n  Queries lost:         2 (0.20%)\n"
            "  Queries per second:   21234.5\n  Average Latency (s):  0.000512 (min 0.000020, max 0.003)\n")  # fmt: skip
    assert bench.parse_dnsperf(text) == {"qps": 21234.5, "completed": 998, "lost": 2, "latency_ms": 0.512}


@pytest.mark.slow
@pytest.mark.netns
@pytest.mark.root
@pytest.mark.engine
def test_tiny_gslb_run(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    assert shutil.which("dnsperf"), "dnsperf is not installed (make deps)"
    readme = tmp_path / "README.md"
    bench_run, out, err = run_bench("gslb.py", ["--seconds", "1", "--failovers", "1", "--results-dir", str(tmp_path),
                                                "--readme", str(readme)], 400)  # fmt: skip
    assert bench_run.returncode == 0, out + err[-4000:]
    [result] = tmp_path.glob("*-gslb.json")
    doc = json.loads(result.read_text())
    assert [c["case"] for c in doc["cases"]] == [c[0] for c in bench.CASES]
    for case in doc["cases"]:
        assert case["qps"] > 0 and case["completed"] > 0 and case["lost"] <= case["completed"] * 0.01, case
    [failover] = doc["failovers"]
    assert failover["down_s"] is not None and failover["back_s"] is not None
    assert "<!-- results:gslb start -->" in readme.read_text() and "queries/s" in readme.read_text()
    assert namespaces_of(f"pacslb-bench-{bench_run.pid}-") == [], "the bench left namespaces behind"
