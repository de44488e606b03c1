"""bench/layer4.py works: a helper or two, and one tiny run of every case (about 1 s each, every workload).

No timed assertions: the smoke run only proves that each case (nftables NAT, nftables DR, HAProxy in TCP
mode, plain routing, direct) carried requests without socket errors, through both real servers where it should.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from bench_support import load_bench, namespaces_of

bench = load_bench("layer4.py")


def test_readme_section_is_replaced_between_the_layer4_markers_only(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(
        "# bench\n\n<!-- results:l7 start -->\nL7\n<!-- results:l7 end -->\n\n"
        f"## Layer 4\n\n{bench.MARK_START}\nold\n{bench.MARK_END}\n"
    )
    bench.update_readme(readme, "new table\n")
    text = readme.read_text()
    assert "old" not in text and f"{bench.MARK_START}\nnew table\n{bench.MARK_END}" in text
    assert "<!-- results:l7 start -->\nL7\n<!-- results:l7 end -->" in text and text.startswith("# bench\n")


def test_wrk_command_closes_connections_only_when_asked():
    ka = bench.wrk_command("10.99.0.10", 8001, bench.WORKLOADS["small-keepalive"], 3)
    close = bench.wrk_command("10.99.0.10", 8001, bench.WORKLOADS["small-close"], 3)
    assert "Connection: close" not in ka and ka[-1] == "http://10.99.0.10:8001/small"
    assert close[close.index("-H") + 1] == "Connection: close" and "3s" in close


@pytest.mark.slow
@pytest.mark.netns
@pytest.mark.root
def test_tiny_layer4_run_serves_every_case(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    missing = [t for t in ("wrk", "haproxy", "nginx", "nft", "ip") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    readme = tmp_path / "README.md"
    readme.write_text("# bench\n")
    rc = bench.main(
        ["--duration", "1", "--rounds", "1", "--warmup", "0", "--baseline", "0.2",
         "--results-dir", str(tmp_path / "results"), "--readme", str(readme)]
    )  # fmt: skip
    assert namespaces_of(f"pacslb-bench-{os.getpid()}-") == []  # the namespaces are gone
    files = list((tmp_path / "results").glob("*-layer4.json"))
    assert len(files) == 1
    doc = json.loads(files[0].read_text())
    assert {(r["workload"], r["case"]) for r in doc["runs"]} == {(w, c) for w in bench.WORKLOADS for c in bench.CASES}
    for r in doc["runs"]:
        if r["workload"] == "10mb-keepalive-mtu":  # 10 MiB in MTU-sized packets can take more than the 1 s
            assert r["bytes"] > 0, r
        else:
            assert r["requests"] > 0, r
        assert r["socket_errors"] == 0, r
        assert r["errors"]["status"] == 0, r
    routes = {c: doc["cases"][c]["route"] for c in bench.CASES}
    for c in ("nat", "dr", "haproxy"):  # the load balancer reaches both real servers
        assert set(routes[c]["real_servers"]) == {"rs1", "rs2"}, routes[c]
    assert routes["direct"]["real_servers"].keys() == routes["routed"]["real_servers"].keys() == {"rs1"}
    assert routes["nat"]["peers_seen"] == routes["dr"]["peers_seen"] == routes["routed"]["peers_seen"] == [bench.CLIENT]
    assert routes["haproxy"]["peers_seen"] == [bench.LB_SERVER_SIDE]
    assert rc == 0
    assert bench.MARK_START in readme.read_text()
