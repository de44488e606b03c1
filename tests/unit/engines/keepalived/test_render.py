"""The keepalived renderer: golden files per feature (tests/golden/keepalived/), then single rules."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pacslb.engines.keepalived.render import KeepalivedPaths, RenderError, render, render_scripts
from pacslb.model import load_file, validate_data

GOLDEN_DIR = Path(__file__).resolve().parents[3] / "golden" / "keepalived"
CASES = sorted(p for p in GOLDEN_DIR.iterdir() if p.is_dir() and re.match(r"^\d{3}_", p.name))
STATE = KeepalivedPaths(Path("/var/lib/pacslb"))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden(case: Path, update_golden: bool) -> None:
    """Each case's config.yaml renders exactly its keepalived.conf (pytest --update-golden rewrites it)."""
    loaded = load_file(case / "config.yaml")
    assert loaded.ok and not loaded.problems, [str(p) for p in loaded.problems]
    text = render(loaded.config, STATE)
    assert text == render(loaded.config, STATE)  # deterministic
    expected = case / "keepalived.conf"
    if update_golden:
        expected.write_text(text)
        return
    assert expected.exists(), f"{expected} is missing: run `pytest --update-golden` and review the new file"
    assert text == expected.read_text(), f"{case.name}: rendering differs from keepalived.conf (pytest --update-golden)"


def _config(**ha) -> dict:
    base = {"role": "primary", "address": "10.0.0.2", "peer_address": "10.0.0.3", "interface": "eth0",
            "sync": {"peer_certificate": "/etc/pacslb/peer.pem"}}  # fmt: skip
    base.update(ha)
    return {
        "version": 1,
        "virtual_services": [
            {
                "name": "web",
                "mode": "layer7-http",
                "listen": [{"address": "10.0.0.10", "port": 80}],
                "real_servers": [{"name": "rs1", "address": "10.0.1.1", "port": 80}],
            }
        ],  # fmt: skip
        "ha": base,
    }


def test_defaults_are_vrrp3_subsecond_unicast_nopreempt_both_backup():
    loaded = validate_data(_config())
    assert loaded.ok, loaded.problems
    text = render(loaded.config, STATE)
    assert "vrrp_version 3" in text and "advert_int 0.1" in text
    assert "state BACKUP" in text and "nopreempt" in text and "priority 150" in text
    assert "unicast_peer {\n        10.0.0.3\n    }" in text
    assert "10.0.0.10/32 dev eth0" in text.split("virtual_ipaddress_excluded")[1]
    secondary = validate_data(_config(role="secondary", address="10.0.0.3", peer_address="10.0.0.2"))
    assert "priority 100" in render(secondary.config, STATE)


def test_adverts_carry_one_address_of_the_router_id_and_every_floating_ip_is_excluded():
    data = _config(virtual_router_id=9)
    data["virtual_services"][0]["listen"] = [{"address": f"10.0.0.{i}", "port": 80} for i in range(10, 35)]
    text = render(validate_data(data).config, STATE)
    advertised, excluded = text.split("virtual_ipaddress_excluded")
    assert advertised.count(" dev eth0") == 1 and "169.254.77.9/32 dev eth0" in advertised
    assert excluded.count(" dev eth0") == 25
    # so a node that already runs more floating IPs still takes the other's adverts: the same advertised text
    fewer = _config(virtual_router_id=9)
    assert render(validate_data(fewer).config, STATE).split("virtual_ipaddress_excluded")[0] == advertised


@pytest.mark.parametrize(
    "ha, path, words",
    [
        ({"peer_address": "10.0.0.2"}, "ha.peer_address", "own address"),
        ({"floating_ips": [{"address": "10.0.0.99"}]}, "ha.floating_ips[0].address", "not the address of any virtual service"),
        ({"interface_network": "192.168.0.0/24"}, "ha", "outside the interface's network"),
        ({"advert_interval": "105ms"}, "ha.advert_interval", "multiple of 10ms"),
        ({"interface": "eth0 up"}, "ha.interface", "not an interface name"),
        ({"sync": {}}, "ha.sync.peer_certificate", "pacslb ha pair"),
        ({"floating_ips": [{"address": "10.0.0.10", "prefix": 33}]}, "ha.floating_ips[0]", "too long"),
        ({"peers_port": 80}, "virtual_services[web].listen", "taken by the HA pair"),
        ({"address": "10.0.0.10"}, "ha", "a node's own address"),
    ],
)
def test_bad_ha_sections_are_refused_with_the_field_and_the_fix(ha, path, words):
    data = _config(**ha)
    if ha.get("peers_port") == 80:
        data["virtual_services"][0]["listen"].append({"address": "0.0.0.0", "port": 80})
    loaded = validate_data(data)
    assert not loaded.ok
    assert any(p.path == path and words in p.message for p in loaded.problems), [str(p) for p in loaded.problems]


def test_without_ha_there_is_nothing_to_render():
    data = _config()
    del data["ha"]
    with pytest.raises(RenderError, match="no `ha` section"):
        render(validate_data(data).config, STATE)


def test_scripts_read_haproxy_pidfile_and_append_events():
    scripts = render_scripts(STATE)
    assert "/var/lib/pacslb/haproxy/haproxy.pid" in scripts[STATE.check_script]
    assert "/var/lib/pacslb/keepalived/vrrp-events" in scripts[STATE.notify_script]
