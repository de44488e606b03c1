"""bench/health_checks.py works: its pure helpers, and one tiny run of every case against real peers (-m slow).

No timed assertions: the tiny run proves that each case's checker process ran real checks against its peer,
that none failed, and that the results and the README section are written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from bench_support import load_bench

bench = load_bench("health_checks.py")


def _run(**overrides) -> dict:
    run = {"case": "connect", "target_rate": 1000, "rate": 999.0, "failed": 0, "late_p50_ms": 1.0, "late_p99_ms": 20.0,
           "latency_p50_ms": 1.0, "latency_p99_ms": 5.0, "cpu": 0.2, "peers_cpu": 0.1, "failure_reasons": {}}  # fmt: skip
    run.update(overrides)
    run["sustained"] = bench.sustained(run)
    return run


def test_sustained_needs_the_rate_no_failures_and_a_small_p99_lateness():
    assert _run()["sustained"]
    assert not _run(rate=900.0)["sustained"]
    assert not _run(failed=1)["sustained"]
    assert not _run(late_p99_ms=150.0)["sustained"]
    assert not _run(late_p99_ms=None)["sustained"]


def test_percentiles():
    assert bench.pct([], 0.5) is None
    assert bench.pct([3, 1, 2], 0.5) == 2
    assert bench.pct(list(range(100)), 0.99) == 99


def test_section_lists_every_run_and_the_best_rate():
    doc = {
        "started": "2026-11-27T00:00:00Z", "command": "bench/health_checks.py", "duration_s": 10, "warmup_s": 2,
        "machine": {"cpus": 2, "python": "3.11", "loadavg_at_start": [1.0, 1, 1], "loadavg_at_end": [2.0, 1, 1]},
        "runs": [_run(), _run(case="dicom-echo", rate=300.0, failed=2, failure_reasons={"C-ECHO status 0x0110": 2})],
        "best": {"connect": 1000.0, "dicom-echo": None},
    }  # fmt: skip
    text = bench.section(doc)
    assert "| connect | 1 | 1000 | 999 | 0 |" in text and "| **no** |" in text
    assert "- connect: 1000 checks/s" in text and "- dicom-echo: none of the rates tried" in text
    assert "2x C-ECHO status 0x0110" in text
    two = bench.section({**doc, "runs": [_run(workers=2, cpu=0.5, controller_cpu=0.01)]})
    assert "| connect | 2 | 1000 | 999 | 0 |" in two and "| 0.50 (0.01) |" in two


@pytest.mark.slow
def test_tiny_run_with_two_check_workers(tmp_path):
    """--workers 2 runs the appliance's worker pool: the checks ran in 2 worker processes, whose records came back."""
    rc = bench.main(["--cases", "connect", "--rates", "20", "--workers", "2", "--duration", "1", "--warmup", "0.5", "--timeout", "0.5",
                     "--results-dir", str(tmp_path / "results"), "--no-readme"])  # fmt: skip
    assert rc == 0
    (run,) = json.loads(next((tmp_path / "results").glob("*-health.json")).read_text())["runs"]
    assert run["workers"] == 2 and run["worker_reports"] == 2, run
    assert run["checks"] > 0 and run["failed"] == 0 and run["controller_cpu"] is not None, run


@pytest.mark.slow
@pytest.mark.engine
def test_tiny_run_of_every_case(tmp_path):
    cases = ["connect", "http", "hl7"]
    if shutil.which("storescp"):
        cases.append("dicom-echo")
    if Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists() and shutil.which("epmd"):
        cases.append("amqp")
    readme = tmp_path / "README.md"
    readme.write_text("# bench\n\n<!-- results:l7 start -->\nL7\n<!-- results:l7 end -->\n")
    rc = bench.main(
        ["--cases", ",".join(cases), "--rates", "20", "--duration", "1", "--warmup", "0.5", "--dicom-peers", "2", "--timeout", "1",
         "--results-dir", str(tmp_path / "results"), "--readme", str(readme)]
    )  # fmt: skip
    assert rc == 0
    files = list((tmp_path / "results").glob("*-health.json"))
    assert len(files) == 1
    doc = json.loads(files[0].read_text())
    assert [r["case"] for r in doc["runs"]] == cases
    for r in doc["runs"]:
        assert r["checks"] > 0 and r["failed"] == 0, r
        assert r["cpu"] > 0 and r["late_p99_ms"] is not None, r
    text = readme.read_text()
    assert "<!-- results:health start -->" in text and "<!-- results:l7 start -->\nL7\n<!-- results:l7 end -->" in text
