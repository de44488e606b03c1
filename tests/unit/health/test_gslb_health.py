"""The health of GSLB sites (health/gslb.py): one watch per checked site, a site's state from its check and its local
virtual service (pure), and the status text of `pacslb gslb status` (cli/gslb_commands.py)."""

from __future__ import annotations

from pacslb.cli.gslb_commands import format_status
from pacslb.health.base import Target
from pacslb.health.gslb import site_health, site_watches
from pacslb.model import validate_data


def _config():
    data = {"version": 1,
            "virtual_services": [{"name": "wfc", "mode": "layer7-tcp", "listen": [{"address": "127.0.0.1", "port": 8443}],
                                  "real_servers": [{"name": "rs1", "address": "192.0.2.50", "port": 443}]}],
            "gslb": {"zones": [{"name": "pacs.test", "nameservers": ["ns1.example.net"]}],
                     "sites": [{"name": "dc1", "addresses": ["2001:db8::1", "192.0.2.1"], "check_address": "192.0.2.1",
                                "health_check": {"type": "dicom-echo", "port": 104, "interval": "2s", "timeout": "1s", "fall": 2}},
                               {"name": "dc2", "addresses": ["192.0.2.2"], "virtual_service": "wfc"},
                               {"name": "dc3", "addresses": ["192.0.2.3"]}],
                     "names": [{"name": "sr.pacs.test", "policy": "failover", "sites": ["dc1", "dc2", "dc3"]}]}}  # fmt: skip
    loaded = validate_data(data)
    assert loaded.ok, loaded.problems
    return loaded.config


def test_one_watch_per_checked_site_against_its_check_address_and_port():
    [watch] = site_watches(_config())
    assert watch.key == ("gslb", "dc1") and watch.target == Target("192.0.2.1", 104)
    assert (watch.interval, watch.fall) == (2.0, 2) and type(watch.probe).__name__ == "DicomEchoProbe"
    assert site_watches(validate_data({"version": 1}).config) == []


def test_a_site_is_up_when_its_check_passes_and_its_local_service_is_up():
    config = _config()
    assert site_health(config, {}, {}) == {"dc1": True, "dc2": True, "dc3": True}  # nothing decided yet: up
    assert site_health(config, {"dc1": False}, {"wfc": False}) == {"dc1": False, "dc2": False, "dc3": True}
    assert site_health(config, {"dc1": True}, {"wfc": True})["dc2"] is True


def test_status_text_names_each_network_its_sites_and_why():
    status = {"configured": True, "running": True, "pid": 42, "reloads": 3, "error": None, "listen": "127.0.0.1:5300",
              "sites": [{"name": "dc1", "up": False, "addresses": ["192.0.2.1"], "check": "http", "reason": "HTTP 503",
                         "changed_at": None, "virtual_service": None}],
              "names": [{"name": "sr.pacs.test", "policy": "failover", "ttl": 30, "all_down": True, "down": ["dc1"],
                         "answers": [{"clients": ["any"], "sites": [], "addresses": ["203.0.113.9"], "weights": None,
                                      "reason": "every member site is down: answering the configured fallback"}]}]}  # fmt: skip
    text = format_status(status)
    assert "PowerDNS answering on 127.0.0.1:5300 (PID 42, 3 reloads)" in text
    assert "dc1              DOWN  192.0.2.1  (HTTP 503)" in text
    assert "sr.pacs.test (failover, ttl 30s)  ALL MEMBERS DOWN: answering the fallback" in text
    assert "any" in text and "-> fallback" in text and "203.0.113.9" in text
    assert format_status({"configured": False}) == "GSLB is not configured (the configuration has no gslb section)\n"
