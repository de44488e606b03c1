"""Revision pruning on the real appliance, through the CLI: `settings.revisions.keep`, `pacslb revisions`
(what is kept), `pacslb rollback` of a pruned revision, `pacslb revisions prune --keep N`."""

from __future__ import annotations

import json

import pytest
from changes_support import store

from support.configs import http_service_config
from support.net import free_port
from support.wait import wait_until

pytestmark = pytest.mark.e2e


def config_text(port, servers, keep: int) -> str:
    text = http_service_config(port, servers, interval_ms=300, fall=2)
    return text.replace("settings: {", f"settings: {{revisions: {{keep: {keep}}}, ", 1)


@pytest.fixture
def appliance(http_server, start_appliance):
    servers = [http_server("rs1"), http_server("rs2")]
    port = free_port()
    appliance = start_appliance(config_text(port, servers, keep=12))
    appliance.servers, appliance.vip_port = servers, port
    wait_until(lambda: len(appliance.api_status()["virtual_services"]) == 1, 10, what="the service")
    return appliance


def listed(appliance) -> dict:
    done = appliance.cli("revisions", "--json", "-n", "100")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_changes_beyond_keep_prune_the_oldest_and_rollback_says_so(appliance):
    for n in range(14):  # runtime changes, each one a revision: 15 in all with the startup one
        done = appliance.cli("server", "weight", "web", "rs1", str(n + 1))
        assert done.returncode == 0, done.stderr
    seen = listed(appliance)
    assert [r["id"] for r in seen["revisions"]] == list(range(15, 3, -1))  # the latest 12
    assert seen["current"] == 15
    assert seen["kept"]["keep"] == 12 and seen["kept"]["stored"] == 12 and seen["kept"]["pruned"]["through"] == 3

    table = appliance.cli("revisions")
    assert table.returncode == 0, table.stderr
    assert "kept: the latest 12 revisions (settings.revisions.keep); 12 stored, the oldest 4" in table.stdout
    assert "3 older ones pruned" in table.stdout

    refused = appliance.cli("rollback", "2")
    assert refused.returncode == 1
    assert "revision 2 was pruned: the store keeps the latest 12 revisions" in refused.stderr + refused.stdout
    assert "raise settings.revisions.keep to keep more" in refused.stderr + refused.stdout
    assert "there is no revision 99" in (lambda d: d.stderr + d.stdout)(appliance.cli("rollback", "99"))
    diff = appliance.cli("diff", "1")
    assert diff.returncode == 1 and "revision 1 was pruned" in diff.stderr
    read = appliance.api("GET", "/revisions/2")  # the controller API says so too (the management API shares it)
    assert read.status_code == 404 and "revision 2 was pruned" in read.json()["message"]

    back = appliance.cli("rollback", "4")  # the oldest kept one still works
    assert back.returncode == 0, back.stderr
    assert store(appliance).current().kind == "rollback"
    assert [r["id"] for r in listed(appliance)["revisions"]][-1] == 5  # and it pruned one more


def test_lowering_keep_prunes_at_once_and_by_hand_needs_at_least_ten(appliance):
    for n in range(6):
        assert appliance.cli("server", "weight", "web", "rs2", str(n + 1)).returncode == 0
    assert len(listed(appliance)["revisions"]) == 7

    too_few = appliance.cli("revisions", "prune", "--keep", "9")
    assert too_few.returncode == 2 and "--keep: at least 10" in too_few.stderr
    assert len(listed(appliance)["revisions"]) == 7

    nothing = appliance.cli("revisions", "prune", "--keep", "10")
    assert nothing.returncode == 0 and "nothing to prune: 7 revision(s) stored" in nothing.stdout

    for n in range(5):  # 12 revisions: as many as settings.revisions.keep, nothing pruned yet
        assert appliance.cli("server", "weight", "web", "rs2", str(n + 10)).returncode == 0
    by_hand = appliance.cli("revisions", "prune", "--keep", "10", "--json")
    assert by_hand.returncode == 0, by_hand.stderr
    assert json.loads(by_hand.stdout)["deleted"] == [1, 2] and len(listed(appliance)["revisions"]) == 10

    path = appliance.config.with_name("lower.yaml")
    path.write_text(config_text(appliance.vip_port, appliance.servers, keep=10).replace("rs2", "rs2b"))
    applied = appliance.cli("apply", "-c", str(path), "-m", "keep fewer")
    assert applied.returncode == 0, applied.stderr
    seen = listed(appliance)
    assert seen["kept"]["keep"] == 10 and len(seen["revisions"]) == 10 and seen["revisions"][0]["message"] == "keep fewer"
    invalid = appliance.config.with_name("invalid.yaml")
    invalid.write_text(config_text(appliance.vip_port, appliance.servers, keep=3))
    refused = appliance.cli("apply", "-c", str(invalid))
    assert refused.returncode == 2 and "settings.revisions.keep" in refused.stdout + refused.stderr
    assert len(listed(appliance)["revisions"]) == 10
