"""bench/cluster_failover.py works: its argument bounds, the gap's arithmetic, and one `--quick` run (2 silent deaths
with the real BIRD engine and BFD). No bound of the issue's 1 s is asserted (the machine is shared): each death must
end in a gap, found by BFD well before the BGP hold timer (9 s) would have, with no connection to the dead node after it.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from bench_support import REPO, load_bench, namespaces_of, run_bench

bench = load_bench("cluster_failover.py")


@pytest.mark.parametrize(
    ("argv", "word"),
    [
        (["--deaths", "0"], "--deaths must be between 1 and 50"),
        (["--deaths", "51"], "--deaths must be between 1 and 50"),
        (["--rate", "5"], "--rate must be between 10 and 500"),
        (["--timeout", "9"], "--timeout must be between 0.05 and 5"),
        (["--run", "300"], "--run must be at most half"),
    ],
)
def test_out_of_bounds_arguments_are_refused(argv, word, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(argv)
    assert word in capsys.readouterr().err


def test_quick_defaults():
    assert bench.parse_args(["--quick"]).deaths == 2
    full = bench.parse_args([])
    assert (full.deaths, full.rate, full.run) == (10, 100.0, 20)


def test_the_gap_starts_the_first_run_of_successes_after_the_death():
    death = 10.0
    attempts = [[9.9, "lb1", None], [9.95, "lb2", None]]  # before the death: not counted
    attempts += [[10.0, None, "TimeoutError"], [10.01, "lb2", None], [10.02, None, "TimeoutError"], [10.03, None, "TimeoutError"]]
    attempts += [[10.04 + i / 100, "lb2", None] for i in range(3)]
    seen = bench.gap_of(attempts, death, "lb1", run=3)
    assert seen["gap_s"] == pytest.approx(0.04) and seen["attempts_after_death"] == 7 and seen["failed_after_death"] == 3
    assert seen["longest_failed_run"] == 2 and seen["longest_failed_run_span_s"] == pytest.approx(0.01)
    assert seen["last_failure_s"] == pytest.approx(0.03) and seen["errors"] == {"TimeoutError": 3}
    assert seen["successes_per_node"] == {"lb1": 1, "lb2": 5} and seen["dead_node_after_death"] == 0
    late = bench.gap_of(sorted([*attempts, [10.005, "lb1", None]], key=lambda a: a[0]), death, "lb1", run=3, down=10.01)
    assert late["dead_node_after_death"] == 1 and late["dead_node_after_link_down"] == 0
    assert bench.gap_of(attempts, death, "lb1", run=4)["gap_s"] is None  # no run of 4: no gap, not a made-up one
    assert bench.summary([0.3, 0.5, 0.4]) == {"min": 0.3, "median": 0.4, "p90": 0.48, "max": 0.5}
    assert bench.summary([])["median"] is None


@pytest.mark.slow
@pytest.mark.netns
@pytest.mark.root
@pytest.mark.e2e
def test_quick_failover_run(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    for tool in ("bird", "birdc", "haproxy"):
        assert shutil.which(tool), f"{tool} is not installed (make deps)"
    readme = tmp_path / "README.md"
    run, out, err = run_bench(
        "cluster_failover.py", ["--quick", "--results-dir", str(tmp_path), "--readme", str(readme)], 300, terminate=True
    )  # SIGTERM unwinds the bench's own teardown
    assert run.returncode == 0, out + err[-4000:]
    assert namespaces_of(f"pacslb-{run.pid}-") == [], "the bench left namespaces behind"
    [result] = tmp_path.glob("*-cluster-failover.json")
    doc = json.loads(result.read_text())
    assert [d["dead"] for d in doc["deaths"]] == ["lb1", "lb2"]
    for d in doc["deaths"]:
        assert d["gap_s"] is not None and 0 < d["gap_s"] < 6, d  # BFD, not the hold timer (9 s, keepalives every 3 s)
        assert d["route_lost_node_s"] < 6 and d["bfd_down"], d  # the router's BGP session went down by BFD
        assert d["dead_node_after_link_down"] == 0 and d["failed_after_death"] > 0, d  # the death was felt, then routed around
        assert set(d["successes_per_node"]) == {"lb1", "lb2"}, d  # both nodes took new connections before the death
    text = readme.read_text()
    assert bench.MARK_START in text and "| gap: death to new connections succeeding again |" in text
    assert result.name in text


def test_report_rewrites_the_section_from_a_results_file(tmp_path):
    [latest] = sorted((REPO / "bench" / "results").glob("*-cluster-failover.json"))[-1:]
    readme = tmp_path / "README.md"
    readme.write_text(f"# bench\n\n{bench.MARK_START}\nOLD-SECTION\n{bench.MARK_END}\n\n## after\n")
    assert bench.main(["--report", str(latest), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "OLD-SECTION" not in text and text.endswith(f"{bench.MARK_END}\n\n## after\n")
    assert "| gap: death to new connections succeeding again |" in text and latest.name in text
