"""The OWASP CRS 3.3.4 regression corpus through pacslb's WAF (issue 18): block mode, paranoia 1, behind HAProxy.

    .venv/bin/python bench/waf_crs.py                    # the whole corpus (about 2,400 tests; several minutes)
    .venv/bin/python bench/waf_crs.py --files 942100 920350 # only those rule files

Starts `pacslb up` on a fresh state directory with one layer7-http service in front of a local origin, runs every
test through the VIP with tests/support/crs_regression.py, and writes bench/results/<time>-waf-crs.json and the
per-rule-file table between the markers `waf-crs` in docs/waf.md. Every process it starts is stopped by PID.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))

from pacslb.engines.waf.paths import WafPaths  # noqa: E402 - pacslb is installed; kept with the imports below
from support.appliance import Appliance  # noqa: E402 - the tests' harness, importable once tests/ is on the path
from support.crs_regression import CORPUS, Runner, known_reason, load_cases, rule_levels  # noqa: E402 - same
from support.dicomweb import DicomwebOrigin  # noqa: E402 - same
from support.net import free_port  # noqa: E402 - same

DOC = REPO / "docs" / "waf.md"


def config(vip: int, first_port: int, origin: DicomwebOrigin, agent_port: int) -> str:
    return (
        "version: 1\n"
        f"settings: {{max_connections: 2000, health: {{agent_port: {agent_port}}}, management: {{address: 127.0.0.1, port: 0}}, "
        f"waf: {{first_port: {first_port}}}}}\n"
        "virtual_services:\n"
        "  - name: crs\n    mode: layer7-http\n"
        f"    listen: [{{address: 127.0.0.1, port: {vip}}}]\n"
        "    health_check: {type: none}\n"
        f"    real_servers: [{{name: origin, address: {origin.host}, port: {origin.port}}}]\n"
        "    waf: {mode: block, paranoia_level: 1}\n"
    )


def run(files: list[str] | None, workdir: Path) -> dict:
    """Start an appliance, run the corpus (or `files`) through it, stop it; the results as plain data."""
    origin = DicomwebOrigin("127.0.0.1").start()
    vip, first = free_port(), free_port()
    (workdir / "pacslb.yaml").write_text(config(vip, first, origin, free_port()))
    state_dir = Path(tempfile.mkdtemp(prefix="pacslb-crs-", dir="/tmp")) / "state"
    appliance = Appliance(state_dir=state_dir, config=workdir / "pacslb.yaml", log=workdir / "pacslb-up.log")
    try:
        appliance.up(wait=False)
        appliance.wait_healthy(timeout=120)
        runner = Runner("127.0.0.1", vip, WafPaths(state_dir).error_log)
        levels = rule_levels()
        cases = load_cases(CORPUS, files)
        started = time.monotonic()
        results = [runner.run(case) for case in cases]
        seconds = time.monotonic() - started
    finally:
        try:
            appliance.remember_pids()
            appliance.stop(timeout=15)
        finally:
            appliance.kill_leftovers()
            shutil.rmtree(state_dir.parent, ignore_errors=True)
            origin.stop()
    per_file: dict[str, Counter] = defaultdict(Counter)
    failures = []
    for result in results:
        counts = per_file[result.case.rule_file]
        if result.passed:
            counts["passed"] += 1
            continue
        reason = known_reason(result, levels)
        counts["known" if reason else "unexplained"] += 1
        failures.append({"test": result.case.name, "file": result.case.rule_file, "why": result.why, "reason": reason})
    return {
        "seconds": round(seconds, 1),
        "tests": len(results),
        "passed": sum(c["passed"] for c in per_file.values()),
        "per_file": {name: dict(counts) for name, counts in sorted(per_file.items())},
        "failures": failures,
    }


def table(report: dict) -> str:
    lines = [
        f"{report['tests']} tests, {report['passed']} passed ({100 * report['passed'] / max(report['tests'], 1):.1f} %), "
        f"run in {report['seconds']} s.",
        "",
        "| rule file | tests | passed | known failures | unexplained |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, counts in report["per_file"].items():
        total = sum(counts.values())
        lines.append(
            f"| {name} | {total} | {counts.get('passed', 0)} | {counts.get('known', 0)} | {counts.get('unexplained', 0)} |"
        )
    reasons = Counter(f["reason"].split(":")[0] if f["reason"] else "unexplained" for f in report["failures"])
    lines += ["", "Failures by reason: " + ", ".join(f"{k} {v}" for k, v in reasons.most_common()) + "."]
    return "\n".join(lines)


def write_doc(report: dict) -> None:
    text = DOC.read_text()
    start, end = "<!-- results:waf-crs start -->", "<!-- results:waf-crs end -->"
    block = f"{start}\n{table(report)}\n{end}"
    DOC.write_text(re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", nargs="*", help="rule files by name (e.g. 942100); default: all")
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite the table in docs/waf.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pacslb-crs-bench-") as workdir:
        report = run(args.files, Path(workdir))
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / f"{time.strftime('%Y%m%dT%H%M%S')}-waf-crs.json").write_text(json.dumps(report, indent=1) + "\n")
    print(table(report))
    if not args.no_doc and DOC.exists() and not args.files:
        write_doc(report)


if __name__ == "__main__":
    main()
