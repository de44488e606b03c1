"""HA pairs sync the gslb section (issue 19): it is not node-local, so the primary's section reaches the secondary
whole, and a change of it changes the synced digest (ha/peer_link.py)."""

from __future__ import annotations

from pacslb.ha.peer_link import merge_local, synced_data, synced_digest
from pacslb.model import validate_data
from pacslb.model.ha import NODE_LOCAL

GSLB = {"listen": {"address": "10.0.0.53", "port": 53},
        "zones": [{"name": "pacs.example.org", "nameservers": ["ns1.example.net"]}],
        "sites": [{"name": "dc1", "addresses": ["192.0.2.1"]}],
        "names": [{"name": "wfc.pacs.example.org", "policy": "failover", "sites": ["dc1"]}]}  # fmt: skip


def _config(gslb=None, ttl=30):
    data = {"version": 1}
    if gslb is not None:
        data["gslb"] = {**gslb, "names": [{**gslb["names"][0], "ttl": ttl}]}
    loaded = validate_data(data)
    assert loaded.ok, loaded.problems
    return loaded.config


def test_the_gslb_section_is_synced_whole():
    assert not any(path.split(".")[0] == "gslb" for path in NODE_LOCAL)
    primary = _config(GSLB)
    assert synced_data(primary)["gslb"]["listen"] == {"address": "10.0.0.53", "port": 53}
    assert synced_digest(primary) != synced_digest(_config(GSLB, ttl=5))
    # the secondary takes it as received (it had none, or another one)
    merged = merge_local(synced_data(primary), _config())
    assert validate_data(merged).config.gslb == primary.gslb
    removed = merge_local(synced_data(_config()), primary)
    assert validate_data(removed).config.gslb is None
