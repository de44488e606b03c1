"""The PowerDNS renderer: golden files per feature (tests/golden/powerdns/), each accepted by PowerDNS's own
parser, then the decisions behind the answers (engines/powerdns/answers.py) one rule at a time."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path, PurePosixPath

import pytest

from pacslb.engines.powerdns import process
from pacslb.engines.powerdns.answers import decide
from pacslb.engines.powerdns.render import render_conf, render_zones, zone_data
from pacslb.model import load_file, validate_data

GOLDEN_DIR = Path(__file__).resolve().parents[3] / "golden" / "powerdns"
CASES = sorted(p for p in GOLDEN_DIR.iterdir() if p.is_dir() and re.match(r"^\d{3}_", p.name))
ROOT = PurePosixPath("/var/lib/pacslb/powerdns")
SERIAL = 2026120701


def _case(case: Path):
    loaded = load_file(case / "config.yaml")
    assert loaded.ok and not loaded.problems, [str(p) for p in loaded.problems]
    health_file = case / "health.json"
    health = json.loads(health_file.read_text()) if health_file.exists() else {}
    return loaded.config.gslb, health


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden(case: Path, update_golden: bool) -> None:
    """Each case's config.yaml (and health.json: site -> up) renders exactly its pdns.conf and zones.yaml."""
    gslb, health = _case(case)
    rendered = {"pdns.conf": render_conf(gslb, ROOT), "zones.yaml": render_zones(gslb, health, SERIAL)}
    assert rendered["zones.yaml"] == render_zones(gslb, health, SERIAL)  # deterministic
    for name, text in rendered.items():
        expected = case / name
        if update_golden:
            expected.write_text(text)
            continue
        assert expected.exists(), f"{expected} is missing: run `pytest --update-golden` and review the new file"
        assert text == expected.read_text(), f"{case.name}: rendering differs from {name} (pytest --update-golden)"


@pytest.mark.engine
@pytest.mark.skipif(shutil.which("pdnsutil") is None, reason="pdnsutil is not installed (make deps)")
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_zones_are_accepted_by_powerdns(case: Path) -> None:
    gslb, _ = _case(case)
    result = process.check_zones((case / "zones.yaml").read_text(), [z.name for z in gslb.zones])
    assert result.ok, result.output


@pytest.mark.engine
@pytest.mark.skipif(shutil.which("pdnsutil") is None, reason="pdnsutil is not installed (make deps)")
def test_broken_zone_data_is_refused_with_powerdns_own_words() -> None:
    result = process.check_zones('{"domains": [ {"domain": "pacs.example.org", ', ["pacs.example.org"])
    assert not result.ok and result.output
    missing = process.check_zones('{"domains": []}\n', ["pacs.example.org"])
    assert not missing.ok and "pacs.example.org" in missing.output


def _gslb(policy: str, **site_fields):
    sites = [
        {"name": "dc1", "addresses": ["192.0.2.1", "2001:db8::1"], "near": ["10.1.0.0/16"], "weight": 70},
        {"name": "dc2", "addresses": ["192.0.2.2"], "near": ["10.2.0.0/16"], "weight": 30},
        {"name": "dc3", "addresses": ["192.0.2.3"], "priority": 2},
    ]
    for site in sites:
        site.update(site_fields.get(site["name"], {}))
    data = {"version": 1, "gslb": {"zones": [{"name": "pacs.test", "nameservers": ["ns1.example.net"]}], "sites": sites,
                                   "names": [{"name": "wfc.pacs.test", "policy": policy, "sites": ["dc3", "dc1", "dc2"]}]}}  # fmt: skip
    loaded = validate_data(data)
    assert loaded.ok, loaded.problems
    return loaded.config.gslb


def test_failover_answers_the_first_healthy_site_by_priority_then_list_order():
    gslb = _gslb("failover")
    [answer] = decide(gslb, {})[0].answers
    assert answer.sites == ("dc1",) and answer.addresses == ("192.0.2.1", "2001:db8::1")  # dc3 has priority 2
    [answer] = decide(gslb, {"dc1": False})[0].answers
    assert answer.sites == ("dc2",) and "(dc1 down)" in answer.reason
    [answer] = decide(gslb, {"dc1": False, "dc2": False})[0].answers
    assert answer.sites == ("dc3",)


def test_weighted_answers_every_healthy_site_with_its_weight_per_address():
    gslb = _gslb("weighted")
    [answer] = decide(gslb, {"dc3": False})[0].answers
    assert answer.sites == ("dc1", "dc2")
    assert answer.family(4) == [("192.0.2.1", 70_000), ("192.0.2.2", 30_000)]
    assert answer.family(6) == [("2001:db8::1", 70_000)]
    records = zone_data(gslb, decide(gslb, {"dc3": False}), 1)["domains"][0]["records"]["wfc.pacs.test"]
    assert {"a": {"content": "192.0.2.2", "ttl": 30, "weight": 30_000}} in records


def test_a_site_weight_is_shared_among_its_addresses_of_one_family():
    gslb = _gslb("weighted", dc1={"addresses": ["192.0.2.1", "192.0.2.11", "2001:db8::1"]})
    [answer] = decide(gslb, {"dc3": False})[0].answers
    assert answer.family(4) == [("192.0.2.1", 35_000), ("192.0.2.11", 35_000), ("192.0.2.2", 30_000)]


def test_topology_answers_per_near_network_and_fails_over_when_the_near_site_is_down():
    gslb = _gslb("topology")
    decided = decide(gslb, {})[0]
    assert [(a.clients, a.sites) for a in decided.answers] == [
        (("10.1.0.0/16",), ("dc1",)), (("10.2.0.0/16",), ("dc2",)), ((), ("dc1",))
    ]  # fmt: skip
    down = decide(gslb, {"dc1": False})[0]
    assert [a.sites for a in down.answers] == [("dc2",), ("dc2",), ("dc2",)]
    assert down.answers[0].reason == "near dc1, which is down: dc2 is the first healthy site"
    services = zone_data(gslb, [decided], 1)["domains"][0]["services"]["wfc.pacs.test"]
    assert services == {"10.1.0.0/16": ["_gslb-0.wfc.pacs.test"], "10.2.0.0/16": ["_gslb-1.wfc.pacs.test"],
                        "default": ["_gslb-2.wfc.pacs.test"]}  # fmt: skip


def test_every_site_down_answers_the_fallback_or_every_member_and_says_so():
    gslb = _gslb("topology")
    all_down = {"dc1": False, "dc2": False, "dc3": False}
    decided = decide(gslb, all_down)[0]
    assert decided.all_down and decided.down == ("dc1", "dc2", "dc3")
    assert decided.answers[0].addresses == ("192.0.2.1", "2001:db8::1", "192.0.2.2", "192.0.2.3")
    assert "every member site is down" in decided.answers[0].reason
    data = zone_data(gslb, [decided], 1)["domains"][0]
    assert "services" not in data and len(data["records"]["wfc.pacs.test"]) == 4


def test_a_listen_address_of_either_family():
    gslb = _gslb("failover")
    assert "local-address=127.0.0.1:5300\n" in render_conf(gslb, ROOT)
    gslb.listen.address = "::1"
    assert "local-address=[::1]:5300\n" in render_conf(gslb, ROOT)
    text = render_conf(gslb, ROOT)
    for line in ("disable-axfr=yes", "edns-subnet-processing=yes", "chroot=/var/lib/pacslb/powerdns", "setuid=pdns",
                 "query-cache-ttl=0", "cache-ttl=0", "non-local-bind=yes"):  # fmt: skip
        assert line + "\n" in text
