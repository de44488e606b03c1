"""The BIRD renderer: golden files per feature (tests/golden/bird/), each accepted by BIRD's own parser (`bird -p`),
then the parts one rule at a time, and the parsers of what birdc answers (engines/bird/status.py)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path, PurePosixPath

import pytest

from pacslb.engines.bird import process
from pacslb.engines.bird.render import render_all_routes, render_conf, render_routes, router_id
from pacslb.engines.bird.status import bfd_sessions, bgp_sessions
from pacslb.model import load_file

GOLDEN_DIR = Path(__file__).resolve().parents[3] / "golden" / "bird"
CASES = sorted(p for p in GOLDEN_DIR.iterdir() if p.is_dir() and re.match(r"^\d{3}_", p.name))
FOLDER = PurePosixPath("/var/lib/pacslb/bird")


def _case(case: Path):
    loaded = load_file(case / "config.yaml")
    assert loaded.ok and not [p for p in loaded.problems if p.severity == "error"], [str(p) for p in loaded.problems]
    return loaded.config.cluster, json.loads((case / "announced.json").read_text())


def _rendered(case: Path) -> dict[str, str]:
    cluster, announced = _case(case)
    return {"bird.conf": render_conf(cluster, FOLDER), **render_all_routes(announced)}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden(case: Path, update_golden: bool) -> None:
    """Each case's config.yaml (and announced.json: the VIPs announced now) renders exactly its three files."""
    rendered = _rendered(case)
    assert rendered == _rendered(case)  # deterministic
    for name, text in rendered.items():
        expected = case / name
        if update_golden:
            expected.write_text(text)
            continue
        assert expected.exists(), f"{expected} is missing: run `pytest --update-golden` and review the new file"
        assert text == expected.read_text(), f"{case.name}: rendering differs from {name} (pytest --update-golden)"


@pytest.mark.engine
@pytest.mark.skipif(shutil.which("bird") is None, reason="bird is not installed (make deps: bird2)")
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_files_are_accepted_by_bird(case: Path) -> None:
    cluster, announced = _case(case)
    result = process.check(lambda folder: render_conf(cluster, folder), render_all_routes(announced))
    assert result.ok, result.output


@pytest.mark.engine
@pytest.mark.skipif(shutil.which("bird") is None, reason="bird is not installed (make deps: bird2)")
def test_a_broken_file_is_refused_with_bird_own_words() -> None:
    cluster, _ = _case(CASES[0])
    routes = render_all_routes([])
    routes["vips4.conf"] = "route 192.0.2.10/33 blackhole;\n"
    result = process.check(lambda folder: render_conf(cluster, folder), routes)
    assert not result.ok and "vips4.conf" in result.output and "Invalid prefix length" in result.output
    assert "pacslb-bird-check" not in result.output  # the scratch folder is named <new>, not a temporary path


def test_one_bgp_session_per_neighbor_each_with_bfd_and_the_model_timers() -> None:
    cluster, _ = _case(CASES[0])
    conf = render_conf(cluster, FOLDER)
    assert conf.count("protocol bgp ") == 2 and conf.count("bfd on;") == 2
    assert "neighbor 10.0.1.2 port 1179 as 65001;" in conf and "hold time 9;" in conf and "keepalive time 3;" in conf
    assert "min rx interval 50 ms;" in conf and "multiplier 4;" in conf
    assert 'include "/var/lib/pacslb/bird/vips4.conf";' in conf and "router id 10.0.1.12;" in conf
    assert "protocol kernel" not in conf  # a node only announces: nothing goes into its own routing table


def test_without_bfd_there_is_no_bfd_protocol() -> None:
    cluster, _ = _case(CASES[1])
    conf = render_conf(cluster, FOLDER)
    assert "protocol bfd" not in conf and "bfd on" not in conf and "ipv6 {" in conf


def test_an_ipv6_node_gets_a_stable_ipv4_router_id_from_its_name() -> None:
    cluster, _ = _case(CASES[1])
    first = router_id(cluster)
    assert first == router_id(cluster) and first != "0.0.0.0"
    renamed = cluster.model_copy(update={"name": "other"})
    assert router_id(renamed) != first


def test_routes_are_host_routes_of_one_family_sorted_and_once() -> None:
    text = render_routes(["192.0.2.11", "2001:db8::10", "192.0.2.10", "192.0.2.11"], 4)
    assert text.splitlines()[1:] == ["route 192.0.2.10/32 blackhole;", "route 192.0.2.11/32 blackhole;"]
    assert render_routes(["192.0.2.11", "2001:db8::10"], 6).splitlines()[1:] == ["route 2001:db8::10/128 blackhole;"]
    assert render_routes([], 4).count("route") == 0


SHOW_PROTOCOLS = """Name       Proto      Table      State  Since         Info
device1    Device     ---        up     12:40:01.123
bfd1       BFD        ---        up     12:40:01.123
vips4      Static     master4    up     12:40:01.123
uplink1    BGP        ---        up     12:40:02.456  Established
uplink2    BGP        ---        start  2026-12-06 23:59:59  Active        Socket: Connection refused
uplink3    BGP        ---        start  12:40:01.123  Idle
"""

SHOW_BFD = """bfd1:
IP address                Interface  State      Since         Interval  Timeout
10.0.1.1                  veth0      Up         12:40:02.300    0.100    0.300
fd00::1                   veth1      Down       12:40:05.000    1.000    0.000
"""


def test_bgp_sessions_are_read_from_show_protocols() -> None:
    sessions = bgp_sessions(SHOW_PROTOCOLS)
    assert [s.protocol for s in sessions] == ["uplink1", "uplink2", "uplink3"]
    assert [s.established for s in sessions] == [True, False, False]
    assert sessions[1].since == "2026-12-06 23:59:59" and sessions[1].info == "Active Socket: Connection refused"
    assert sessions[2].info == "Idle" and bgp_sessions("") == []


def test_bfd_sessions_are_read_from_show_bfd_sessions() -> None:
    sessions = bfd_sessions(SHOW_BFD)
    assert [(s.address, s.interface, s.state) for s in sessions] == [("10.0.1.1", "veth0", "Up"), ("fd00::1", "veth1", "Down")]
    assert bfd_sessions("bfd1:\nIP address  Interface  State\n") == []
