"""bench/waf.py works: one tiny run (1 s per measurement, one 8 MiB STOW-RS upload) through the three services.

No timed assertions: the smoke run proves that every case carried its requests with no error and no non-2xx answer,
through the WAF (Apache's CPU shows up only where a policy is) and without it, and that the table is written.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.engine, pytest.mark.root, pytest.mark.e2e]


def test_the_quick_run_carries_every_case_without_errors(tmp_path):
    for tool in ("apache2", "nginx", "wrk"):
        assert shutil.which(tool), f"{tool} is needed: make deps"
    done = subprocess.run([sys.executable, str(REPO / "bench" / "waf.py"), "--quick", "--results", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=REPO)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (results,) = tmp_path.glob("*-waf.json")
    doc = json.loads(results.read_text())
    for service in ("direct", "pl1", "pl2"):
        summary = doc["summary"][service]
        assert summary["errors"] == 0, (service, doc["raw"][service])
        assert summary["qido_rps"] > 0 and summary["wado_rps"] > 0 and summary["stow_mib_per_s"] > 0
    # the WAF tier costs CPU only where a policy sends requests through it
    assert doc["summary"]["pl1"]["qido_cpu_ms"] > doc["summary"]["direct"]["qido_cpu_ms"]
    assert "| pl2 |" in done.stdout
