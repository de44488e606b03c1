"""bench/soak.py and bench/faults.py work: a short soak and the quick fault matrix, run as `make test` runs them.

No timed assertions: the soak must carry every kind of load with no failed request outside a reload while
every kind of change lands; the quick fault matrix must see HAProxy serve again after its worker is killed,
and a full state directory refuse the change with what to do, keep serving and leave no file behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.root]


def _run(script: str, *args: str, timeout: float) -> subprocess.CompletedProcess:
    if os.geteuid() != 0:
        pytest.skip(f"bench/{script} needs root")
    return subprocess.run([sys.executable, str(REPO / "bench" / script), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)  # fmt: skip


def _results(directory: Path, suffix: str) -> dict:
    (found,) = directory.glob(f"*-{suffix}.json")
    return json.loads(found.read_text())


def test_a_short_soak_serves_every_load_while_every_kind_of_change_lands(tmp_path):
    done = _run("soak.py", "--quick", "--minutes", "0.5", "--no-readme", "--results-dir", str(tmp_path), timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    doc = _results(tmp_path, "soak")
    summary = doc["summary"]
    assert set(summary["requests"]) == {"http-keepalive", "http-close", "https-keepalive", "tcp"}
    assert all(n > 20 for n in summary["requests"].values()), summary["requests"]
    assert summary["failed_classes"]["outside_reloads"] == 0, doc["failures"][:10]
    for kind in ("runtime-op", "apply-runtime", "apply-reload"):
        assert summary["changes"].get(kind, {}).get("applied", 0) >= 1, summary["changes"]
    # the one rollback of a short run goes to the revision before the current one, which a drain and an online
    # a second apart can leave equal to it: "unchanged" is a right answer too (an error is not)
    rollbacks = summary["changes"].get("rollback", {})
    assert rollbacks.get("applied", 0) + rollbacks.get("unchanged", 0) >= 1 and set(rollbacks) <= {"applied", "unchanged"}, (
        rollbacks
    )
    assert all(
        kind.startswith("replica-") or set(outcomes) <= {"applied", "unchanged"} for kind, outcomes in summary["changes"].items()
    ), summary["changes"]
    assert summary["poll_failures"] == 0, doc["poll_failures"][:10]
    assert len(doc["samples"]) >= 3 and all(s["controller_rss_kb"] > 0 for s in doc["samples"])


def test_the_quick_fault_matrix_sees_haproxy_come_back_and_a_full_disk_refuse_the_change(tmp_path):
    done = _run("faults.py", "--quick", "--no-readme", "--results-dir", str(tmp_path), timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = _results(tmp_path, "faults")["results"]
    (killed,) = results["worker-kill"]
    assert killed["sent"] > killed["failed"] and not killed["adopted"]  # a new master serves
    (full,) = results["disk-full"]
    for door in ("apply", "drain"):
        answer = full["answers"][door]
        assert answer["status"] == 409 and answer["outcome"] == "refused", answer
        assert "cannot be read or written" in answer["message"] and "nothing was changed" in answer["message"]
    assert full["failed"] == 0 and full["still_serving"] and full["haproxy_cfg_unchanged"]
    assert full["new_files"] == [] and full["apply_after_recovery"] == "applied"
