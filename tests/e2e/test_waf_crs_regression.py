"""The OWASP CRS 3.3.4 regression corpus through pacslb's WAF (block mode, paranoia 1, behind HAProxy): a fixed,
representative subset here (one or two rule files of each attack family); the whole corpus is bench/waf_crs.py,
whose per-file results and known failures are in docs/waf.md.

The subset must not pass fewer tests than recorded below: a change of the renderer, the placement or the engine
that makes the WAF miss what it caught fails here.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from pacslb.engines.waf.paths import WafPaths
from support.appliance import Appliance
from support.crs_regression import CORPUS, Runner, known_reason, load_cases, rule_levels
from support.dicomweb import DicomwebOrigin
from support.net import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.engine]

if shutil.which("apache2") is None or not CORPUS.is_dir():
    pytest.skip(f"apache2 (make deps) and the CRS regression corpus ({CORPUS}) are needed", allow_module_level=True)

# one or two rule files per family: methods, scanners, protocol, LFI, RFI, RCE, PHP, Node.js, XSS, SQLi, session, Java
SUBSET = ["911100", "913100", "920170", "920270", "921110", "930100", "931100", "932100", "932160", "933100",
          "934100", "941100", "941160", "942100", "942190", "943100", "944100"]  # fmt: skip
RECORDED_PASSED = 137  # measured on 2026-12-07 (docs/waf.md); the subset must never pass fewer
RECORDED_TESTS = 138


@pytest.fixture(scope="module")
def vip(tmp_path_factory):
    origin = DicomwebOrigin("127.0.0.1").start()
    workdir = tmp_path_factory.mktemp("crs")
    port, first = free_port(), free_port()
    (workdir / "pacslb.yaml").write_text(
        "version: 1\n"
        f"settings: {{max_connections: 2000, health: {{agent_port: {free_port()}}}, management: {{address: 127.0.0.1, port: 0}}, "
        f"waf: {{first_port: {first}}}}}\n"
        "virtual_services:\n  - name: crs\n    mode: layer7-http\n"
        f"    listen: [{{address: 127.0.0.1, port: {port}}}]\n    health_check: {{type: none}}\n"
        f"    real_servers: [{{name: origin, address: {origin.host}, port: {origin.port}}}]\n"
        "    waf: {mode: block, paranoia_level: 1}\n"
    )
    state_dir = Path(tempfile.mkdtemp(prefix="pacslb-crs-", dir="/tmp")) / "state"
    appliance = Appliance(state_dir=state_dir, config=workdir / "pacslb.yaml", log=workdir / "pacslb-up.log")
    try:
        appliance.up(wait=False)
        appliance.wait_healthy(timeout=120)
        yield port, WafPaths(state_dir).error_log
    finally:
        try:
            appliance.remember_pids()
            appliance.stop(timeout=15)
        finally:
            left = appliance.kill_leftovers()
            if left:
                print(f"teardown killed leftover processes {left} of {state_dir}", file=sys.stderr)
            shutil.rmtree(state_dir.parent, ignore_errors=True)
            origin.stop()


def test_the_subset_passes_at_least_what_was_recorded(vip):
    port, error_log = vip
    cases = load_cases(CORPUS, SUBSET)
    assert len(cases) == RECORDED_TESTS, "the corpus changed: run bench/waf_crs.py and record the subset again"
    runner = Runner("127.0.0.1", port, error_log)
    results = [runner.run(case) for case in cases]
    passed = sum(r.passed for r in results)
    levels = rule_levels()
    unexplained = [(r.case.name, r.why) for r in results if not r.passed and not known_reason(r, levels)]
    assert passed >= RECORDED_PASSED, f"{passed} of {len(cases)} passed, {RECORDED_PASSED} recorded; unexplained: {unexplained}"
    assert not unexplained
