"""bench/run.py works: its pure helpers, and one tiny run of every case (1 s, one workload).

No timed assertions: the smoke run only proves that each case served requests without socket
errors, so the full benchmark can be trusted to measure what it says.
"""

from __future__ import annotations

import json
import shutil

import pytest
from bench_support import REPO, load_bench

bench = load_bench("run.py")


def test_parse_wrk_reads_the_lua_report_line():
    out = (
        "Running 1s test @ http://127.0.0.1:1/\n"
        'WRK_JSON {"requests":2000,"duration_us":2000000,"bytes":4194304,'
        '"errors":{"connect":0,"read":1,"write":0,"status":3,"timeout":0},'
        '"latency_us":{"min":10,"mean":20.5,"stdev":1.0,"max":99,"p50":20,"p75":25,"p90":30,"p99":50,"p99_9":90}}\n'
    )
    data = bench.parse_wrk(out)
    assert data["rps"] == 1000
    assert data["mib_per_s"] == 2
    assert data["socket_errors"] == 1
    assert data["latency_us"]["p99"] == 50
    with pytest.raises(ValueError):
        bench.parse_wrk("no report here")


def test_wrk_command_closes_connections_only_when_asked():
    ka = bench.wrk_command("http://h/", bench.WORKLOADS["small-keepalive"], 3)
    close = bench.wrk_command("http://h/", bench.WORKLOADS["10mb-close"], 3)
    assert "Connection: close" not in ka and ka[-1] == "http://h/"
    assert close[close.index("-H") + 1] == "Connection: close"
    assert close[close.index("-c") + 1] == "8" and "3s" in close


def test_readme_section_is_replaced_between_markers_only(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(
        "# bench\n\n<!-- results:l4 start -->\nL4\n<!-- results:l4 end -->\n\n"
        f"{bench.MARK_START}\nold\n{bench.MARK_END}\n\ntail\n"
    )
    bench.update_readme(readme, "new table\n")
    text = readme.read_text()
    assert "old" not in text and f"{bench.MARK_START}\nnew table\n{bench.MARK_END}" in text
    assert "L4" in text and text.endswith("tail\n")
    other = tmp_path / "empty.md"
    bench.update_readme(other, "t\n")
    assert other.read_text() == f"{bench.MARK_START}\nt\n{bench.MARK_END}\n"


def test_minimal_haproxy_template_fills_in():
    cfg = bench.render_template(
        bench.MINIMAL_HAPROXY_TEMPLATE, threads=2, listen_address="127.0.0.1", listen_port=8080,
        server1="127.0.0.2:81", server2="127.0.0.3:82",
    )  # fmt: skip
    assert bench.haproxy_nbthread(cfg) == 2
    assert "server r1 127.0.0.2:81" in cfg and "server r2 127.0.0.3:82" in cfg
    assert " check" not in cfg


def test_summary_takes_medians_and_ratios():
    def run(case, rnd, rps):
        return {
            "workload": "w", "case": case, "round": rnd, "rps": rps, "mib_per_s": 1.0, "requests": 100,
            "socket_errors": 0, "errors": {"status": 0},
            "latency_us": {"p50": 1000, "p90": 2000, "p99": 3000}, "cpu_s": {"proxy": 0.01, "backend": 0.02},
        }  # fmt: skip

    runs = [run("b", 0, 90), run("c", 0, 100), run("b", 1, 95), run("c", 1, 100), run("b", 2, 99), run("c", 2, 100)]
    s = bench.summarize(runs)["w"]
    assert s["cases"]["b"]["rps"] == 95 and s["cases"]["b"]["p99_ms"] == 3
    assert s["ratios"]["b/c"] == pytest.approx(0.95)
    assert s["ratios"]["b/c_per_round"] == [0.9, 0.95, 0.99]
    assert s["cases"]["b"]["proxy_cpu_us_per_req"] == pytest.approx(100)


@pytest.mark.slow
@pytest.mark.engine
@pytest.mark.e2e
def test_tiny_bench_run_serves_every_case(tmp_path):
    missing = [t for t in ("wrk", "haproxy", "nginx") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    readme = tmp_path / "README.md"
    readme.write_text((REPO / "bench" / "README.md").read_text())
    rc = bench.main(
        ["--duration", "1", "--rounds", "1", "--warmup", "0", "--workloads", "small-keepalive",
         "--results-dir", str(tmp_path / "results"), "--readme", str(readme)]
    )  # fmt: skip
    files = list((tmp_path / "results").glob("*-l7.json"))
    assert len(files) == 1
    doc = json.loads(files[0].read_text())
    assert rc == 0
    assert {r["case"] for r in doc["runs"]} == {"a", "b", "c", "d"}
    for r in doc["runs"]:
        assert r["requests"] > 0, r
        assert r["socket_errors"] == 0, r
        assert r["errors"]["status"] == 0, r
    for c in ("b", "c", "d"):  # every proxy reaches both real servers
        assert set(doc["cases"][c]["route"]["replicas"]) == {"r1", "r2"}, doc["cases"][c]
    assert doc["parameters"]["haproxy_nbthread"] >= 1
    assert "b/c" in doc["summary"]["small-keepalive"]["ratios"]
    text = readme.read_text()
    assert bench.MARK_START in text and "haproxy-rendered" in text
    # --report turns the same results file into the same table without running anything
    again = tmp_path / "again.md"
    assert bench.main(["--report", str(files[0]), "--readme", str(again)]) == 0
    section = text.split(bench.MARK_START)[1].split(bench.MARK_END)[0]
    assert again.read_text() == f"{bench.MARK_START}{section}{bench.MARK_END}\n"
