"""bench/proxy.py works: its parsers and summary, and a smoke run that produces every case of every smoke workload.

No timed assertions: the smoke run only proves that each case served requests (and handshakes, resumed when
asked) through its proxy without errors, so the full benchmark measures what it says.
"""

from __future__ import annotations

import importlib.util
import json
import shutil

import pytest
from bench_support import REPO, load_bench

bench = load_bench("proxy.py")

SPEED_OUTPUT = """\
                  sign    verify    sign/s verify/s
rsa 2048 bits 0.000699s 0.000020s   1429.7  50092.9
                              sign    verify    sign/s verify/s
 256 bits ecdsa (nistp256)   0.0000s   0.0001s  42218.7  13217.6
"""


def test_openssl_speed_sign_rates_are_read():
    assert bench.parse_openssl_speed(SPEED_OUTPUT) == {"rsa": 1429.7, "ec": 42218.7}
    with pytest.raises(RuntimeError):
        bench.parse_openssl_speed("nothing")


def test_summary_pairs_ratios_within_rounds_and_compares_handshakes_with_the_sign_rate():
    def run(load, case, rnd, per_core):
        return {"load": load, "case": case, "round": rnd, "rps": per_core / 2, "per_core": per_core, "proxy_busy": 0.5,
                "requests": 10, "errors": 0, **({"resumed_share": 0.0} if load.startswith("handshake") else {})}  # fmt: skip

    runs = [run("http-small-keepalive", c, r, v) for r, (a, b) in enumerate([(90, 100), (99, 100), (50, 50)])
            for c, v in (("rendered", a), ("minimal", b))]  # fmt: skip
    runs += [run("handshake-full-rsa", "rendered", 0, 800.0)]
    s = bench.summarize(runs, {"rsa": 1600.0, "ec": 40000.0})
    r = s["http-small-keepalive"]["ratios"]["rendered/minimal"]
    assert r["per_core_rounds"] == [0.9, 0.99, 1.0] and r["per_core"] == pytest.approx(0.99)
    assert s["handshake-full-rsa"]["share_of_sign_rate"]["rendered"] == pytest.approx(0.5)
    assert "rendered/nginx" not in s["http-small-keepalive"]["ratios"]


def test_the_rendered_cases_validate_and_differ_only_in_connection_reuse(tmp_path):
    files = bench.make_files(tmp_path)
    vips = {"http": 1001, "https-ec": 1002, "https-rsa": 1003}
    servers = {a: (2001, 2002) for a in bench.SERVER_ADDRESSES}
    plain = bench.render_haproxy(bench.pacslb_config(vips, servers, files, None), tmp_path / "a", 1)
    reuse = bench.render_haproxy(bench.pacslb_config(vips, servers, files, "aggressive"), tmp_path / "b", 1)
    assert plain.count("http-reuse safe") == 3 and reuse.count("http-reuse aggressive") == 3
    assert plain.replace(str(tmp_path / "a"), "S").replace("http-reuse safe", "R") == reuse.replace(
        str(tmp_path / "b"), "S"
    ).replace("http-reuse aggressive", "R")


def test_every_ablation_edits_the_file_it_names(tmp_path):
    spec = importlib.util.spec_from_file_location("pacslb_bench_proxy_ablate", REPO / "bench" / "proxy_ablate.py")
    ablate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ablate)
    files = bench.make_files(tmp_path)
    vips = {"http": 1001, "https-ec": 1002, "https-rsa": 1003}
    servers = {a: (2001, 2002) for a in bench.SERVER_ADDRESSES}
    rendered = ablate.case_config("rendered", vips, servers, files, tmp_path / "r", "always")
    for name in ablate.ABLATIONS:
        text = ablate.case_config(name, vips, servers, files, tmp_path / name, "always")
        assert text != rendered, name
    assert "retry-on" not in ablate.case_config("no-retries", vips, servers, files, tmp_path / "x", "always")
    with pytest.raises(ValueError, match="matches nothing"):
        ablate.edited("global\n", [("retry-on", "")], "broken")


@pytest.mark.slow
@pytest.mark.engine
@pytest.mark.e2e
def test_smoke_run_produces_every_case_of_every_workload(tmp_path):
    missing = [t for t in ("wrk", "haproxy", "nginx", "openssl", "taskset") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    readme = tmp_path / "README.md"
    readme.write_text(f"# bench\n\n{bench.MARK_START}\nold\n{bench.MARK_END}\n")
    rc = bench.main(["--smoke", "--results-dir", str(tmp_path / "results"), "--readme", str(readme)])
    (results,) = (tmp_path / "results").glob("*-proxy.json")
    doc = json.loads(results.read_text())
    assert rc == 0
    assert {(r["load"], r["case"]) for r in doc["runs"]} == {(w, c) for w in bench.SMOKE_LOADS for c in bench.CASES}
    for r in doc["runs"]:
        assert r["requests"] > 0 and r["errors"] == 0, r
        assert r["proxy_cpu_s"] >= 0 and 0 <= r["proxy_busy"] <= 1.5, r
        if r["load"].startswith("handshake-resumed"):
            assert r["resumed_share"] > 0.5, r  # the server kept the sessions: they were resumed
    assert doc["openssl_speed"]["rsa"] > 0 and doc["openssl_speed"]["ec"] > doc["openssl_speed"]["rsa"]
    assert "http-reuse always" in doc["configs"]["rendered-reuse"] and "http-reuse safe" in doc["configs"]["rendered"]
    text = readme.read_text()
    assert "old" not in text and "| https-small-close | rendered |" in text and "rendered/minimal" in text
