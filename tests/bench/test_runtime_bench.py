"""bench/runtime_ops.py works: its pure helpers, and one tiny run on the real appliance (-m slow).

No timed assertions: the tiny run proves that every measurement completes and is written.
"""

from __future__ import annotations

import json

import pytest
from bench_support import load_bench

bench = load_bench("runtime_ops.py")


def test_percentile_and_summary():
    assert bench.percentile([1, 2, 3, 4], 50) == 2.5
    assert bench.percentile([5], 99) == 5
    assert bench.percentile(list(range(101)), 99) == 99
    s = bench.summary([0.001, 0.002, 0.003])
    assert s == {"count": 3, "median_ms": 2.0, "p99_ms": 2.98, "min_ms": 1.0, "max_ms": 3.0}
    assert bench.summary([]) == {"count": 0}


def test_update_readme_touches_only_its_section(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(
        f"# B\n<!-- results:l7 start -->\nL7\n<!-- results:l7 end -->\n{bench.MARK_START}\nold\n{bench.MARK_END}\ntail\n"
    )
    bench.update_readme(readme, "new\n")
    assert readme.read_text() == (
        f"# B\n<!-- results:l7 start -->\nL7\n<!-- results:l7 end -->\n{bench.MARK_START}\nnew\n{bench.MARK_END}\ntail\n"
    )
    fresh = tmp_path / "NEW.md"
    bench.update_readme(fresh, "x\n")
    assert fresh.read_text() == f"{bench.MARK_START}\nx\n{bench.MARK_END}\n"


def test_generated_configuration_is_valid(tmp_path):
    from pacslb.model import load_file

    path = bench.generated_config(tmp_path, "127.150.1.10", (220, 10), services=30, servers=3)
    loaded = load_file(path)
    assert loaded.ok, loaded.problems
    assert len(loaded.config.virtual_services) == 30
    assert {len(vs.real_servers) for vs in loaded.config.virtual_services} == {3}
    # an agent port of its own, privileged: 334 may be held by another appliance on the machine
    assert loaded.config.settings.health.agent_port < 1024


def test_true_pacs_configuration_is_valid_and_on_loopback(tmp_path):
    from pacslb.model import load_file

    path = bench.true_pacs_config(tmp_path, "127.150.1.10", (220, 10))
    loaded = load_file(path)
    assert loaded.ok, [str(p) for p in loaded.problems]
    addresses = {rs.address for vs in loaded.config.virtual_services for rs in vs.real_servers}
    assert addresses and all(a.startswith("127.") for a in addresses)


@pytest.mark.slow
@pytest.mark.e2e
def test_a_tiny_run(tmp_path):
    code = bench.main([
        "--only", "true-pacs", "--ops", "6", "--cli-ops", "2", "--runtime-applies", "2", "--reload-applies", "2",
        "--no-readme", "--results-dir", str(tmp_path),
    ])  # fmt: skip
    assert code == 0
    (result,) = tmp_path.glob("*-runtime.json")
    doc = json.loads(result.read_text())
    run = doc["runs"]["true-pacs"]
    assert run["runtime_operations"]["count"] == 6 and run["runtime_operations"]["worker_pid_unchanged"]
    assert run["runtime_applies"]["methods"] == ["runtime"]
    assert run["reload_applies"]["methods"] == ["reload"]
    assert run["controller_memory_kb"]["after_all"]["VmRSS"] > 0
    assert "Runtime operations" in bench.section(doc)
