"""The WebUI's HA pair and alerts pages, in-process (web/conftest.py).

The HA page without an `ha` section says so and how to set one up. The pair view is rendered from status snapshots
shaped as ha/pair.py `HAPair.status` answers them (a secondary in step, a primary whose peer is gone, a split
brain), through a stand-in pair that records promote / demote: the pair itself runs in the netns tests
(tests/netns), the browser journeys (test_admin_pages_browser.py) look at the live page without HA."""

from __future__ import annotations

import copy
import time

from pacslb.model import load_text
from pacslb.web.alerts import receiver_rows
from pacslb.web.ha import DEMOTE_QUESTION, PROMOTE_QUESTION, pair_view

NOW = time.time()
SECONDARY = {
    "node": {"role": "secondary", "address": "10.0.0.2", "promoted": False, "vrrp_state": "BACKUP", "vrrp_since": NOW - 600,
             "priority": 100, "revision": 14, "synced_digest": "abc", "keepalived_pid": 4242, "now": NOW,
             "synced": {"primary_revision": 31, "local_revision": 14, "at": NOW - 30, "digest": "abc"}, "transitions": []},
    "peer": {"address": "10.0.0.1", "role": "primary", "reachable": True, "error": None, "last_seen": NOW - 1,
             "state": {"role": "primary", "address": "10.0.0.1", "promoted": False, "vrrp_state": "MASTER",
                       "vrrp_since": NOW - 700, "priority": 150, "revision": 31, "synced_digest": "abc", "synced": None}},
    "keepalived": {"pid": 4242, "restarts": 0, "error": None},
    "split_brain": None,
    "split_brain_rule": "primary-wins",
    "last_push": None,
    "transitions": [{"at": NOW - 610, "state": "START", "reason": "keepalived started afresh", "priority": None},
                    {"at": NOW - 600, "state": "BACKUP", "reason": "keepalived started: both nodes start as backup",
                     "priority": 100}],
}  # fmt: skip


def primary_alone() -> dict:
    status = copy.deepcopy(SECONDARY)
    status["node"].update(role="primary", address="10.0.0.1", vrrp_state="MASTER", priority=150, synced=None)
    status["peer"] = {"address": "10.0.0.2", "role": "secondary", "reachable": False, "error": "All connection attempts failed",
                      "last_seen": NOW - 90, "state": {"vrrp_state": "MASTER"}}  # fmt: skip
    status["last_push"] = {"at": NOW - 95, "revision": 31, "ok": False, "message": "HTTP 409: this node takes no configuration"}
    return status


def split_brain() -> dict:
    status = copy.deepcopy(SECONDARY)
    status["node"]["vrrp_state"] = "MASTER"
    status["split_brain"] = {"since": NOW - 5, "rule": "primary-wins", "resolved": None, "seconds": 3.5, "kept_by": "none"}
    return status


class StandInPair:
    """What the page uses of ha/pair.py HAPair: status(), promote(), demote()."""

    def __init__(self, status: dict) -> None:
        self.snapshot = status
        self.calls: list[str] = []

    def status(self) -> dict:
        return copy.deepcopy(self.snapshot)

    def promote(self) -> dict:
        self.calls.append("promote")
        self.snapshot["node"]["promoted"] = True
        return {"ok": True, "message": "promoted: this node takes changes now, and no configuration from its peer"}

    def demote(self) -> dict:
        self.calls.append("demote")
        self.snapshot["node"]["promoted"] = False
        return {"ok": True, "message": "demoted: this node refuses direct changes and takes the primary's configuration"}


def with_pair(web_app, status: dict) -> StandInPair:
    pair = StandInPair(status)
    web_app.controller._appliance.ha = pair
    return pair


def test_pair_view_of_a_secondary_in_step():
    view = pair_view(copy.deepcopy(SECONDARY))
    this, peer = view["nodes"]
    assert (this["vrrp"], this["role"], peer["vrrp"], peer["role"]) == ("BACKUP", "secondary", "MASTER", "primary")
    assert view["masters"] == ["peer"] and view["in_step"] and not view["warnings"]
    assert view["sync"]["revision"] == 31 and view["sync"]["ok"] and "local revision 14" in view["sync"]["message"]
    assert view["can_promote"] and not view["can_demote"]
    assert view["transitions"][0]["state"] == "BACKUP"  # newest first


def test_pair_view_of_a_primary_whose_peer_is_gone_and_of_a_split_brain():
    view = pair_view(primary_alone())
    peer = view["nodes"][1]
    assert peer["vrrp"] == "unreachable" and peer["error"] == "All connection attempts failed"
    assert view["masters"] == ["this node"] and not view["in_step"]  # an unreachable peer's last state does not count
    assert view["sync"]["ok"] is False and "HTTP 409" in view["sync"]["message"]
    assert not view["can_promote"] and not view["can_demote"]
    broken = pair_view(split_brain())
    assert broken["masters"] == ["this node", "peer"]
    assert any("both nodes are MASTER" in w for w in broken["warnings"])
    assert any("split brain (ONGOING)" in w and "3.50s" in w for w in broken["warnings"])


def test_without_ha_the_page_says_so_and_how_to_set_it_up(web):
    for role in ("viewer", "operator", "admin"):
        client = web(role)
        page = client.get("/ha")
        assert page.status_code == 200 and "has no <code>ha</code> section" in page.text
        assert "docs/high-availability.md" in page.text and "pacslb ha pair" in page.text
        assert 'action="/ha/promote"' not in page.text and 'href="/ha"' in page.text
    admin = web("admin")
    assert admin.form_post("/ha/promote").status_code == 303 and "has no HA pair" in admin.get("/ha").text


def test_the_pair_page_shows_both_nodes_and_only_admins_promote_and_demote(web, web_app):
    pair = with_pair(web_app, copy.deepcopy(SECONDARY))
    viewer = web("viewer")
    page = viewer.get("/ha").text
    assert 'data-node="this node"' in page and 'data-node="peer"' in page and "10.0.0.1" in page and "10.0.0.2" in page
    assert "MASTER" in page and "BACKUP" in page and "runs revision 31 of the primary" in page
    assert 'action="/ha/promote"' not in page and "Read only" in page
    for role in ("viewer", "operator"):
        assert web(role).form_post("/ha/promote").status_code == 403
    assert pair.calls == []

    admin = web("admin")
    page = admin.get("/ha").text
    assert 'action="/ha/promote"' in page and f'data-confirm="{PROMOTE_QUESTION.replace(chr(39), "&#39;")}"' in page
    assert admin.form_post("/ha/promote").status_code == 303
    page = admin.get("/ha").text
    assert (
        "promoted: this node takes changes now" in page and 'action="/ha/demote"' in page and 'action="/ha/promote"' not in page
    )
    assert f'data-confirm="{DEMOTE_QUESTION.replace(chr(39), "&#39;")}"' in page
    assert admin.form_post("/ha/demote").status_code == 303 and pair.calls == ["promote", "demote"]
    actions = [(e.action, e.outcome, e.username) for e in web_app.auth.audit_log.list(limit=20)]
    assert ("ha.promote", "applied", "admin") in actions and ("ha.demote", "applied", "admin") in actions


def test_split_brain_and_an_unreachable_peer_are_warned_of(web, web_app):
    with_pair(web_app, split_brain())
    page = web("viewer").get("/ha").text
    assert page.count('class="error-box split-brain"') == 2 and "split brain (ONGOING)" in page
    with_pair(web_app, primary_alone())
    page = web("admin").get("/ha").text
    assert "unreachable" in page and "All connection attempts failed" in page and "failed" in page
    assert "This node is the primary" in page and 'action="/ha/promote"' not in page


ALERTS = """
version: 1
virtual_services: []
alerts:
  receivers:
    - {name: oncall, type: webhook, url: "https://hooks.example/pacslb", events: [real-server-down], min_severity: critical}
    - {name: logs, type: syslog, target: "127.0.0.1:5514"}
"""


def test_receiver_rows_say_where_each_sends_and_join_the_counters():
    loaded = load_text(ALERTS)
    assert loaded.ok, loaded.problems
    rows = receiver_rows(loaded.config, {"receivers": [{"name": "logs", "sent": 3, "queued": 0}]})
    assert [r["name"] for r in rows] == ["oncall", "logs"]
    assert rows[0]["where"] == "https://hooks.example/pacslb" and rows[0]["counters"] is None
    assert rows[1]["where"] == "127.0.0.1:5514 (udp, local0)" and rows[1]["counters"]["sent"] == 3
    assert receiver_rows(load_text("version: 1\nvirtual_services: []\n").config, {}) == []


def test_the_alerts_page_without_receivers_and_its_test_button_by_role(web, web_app):
    for role in ("viewer", "operator"):
        client = web(role)
        page = client.get("/alerts")
        assert page.status_code == 200 and "No alert receivers" in page.text and 'action="/alerts/test"' not in page.text
        assert client.form_post("/alerts/test").status_code == 403
        assert client.post("/api/v1/alerts/test", headers={"X-CSRF-Token": client.csrf}).status_code == 403
    admin = web("admin")
    answer = admin.form_post("/alerts/test")
    assert answer.status_code == 200 and "No receiver runs" in answer.text
    assert ("alerts.test", "failed") in [(e.action, e.outcome) for e in web_app.auth.audit_log.list(limit=5)]


def test_the_alerts_page_lists_the_configured_receivers_to_every_role(web, web_app):
    running = web_app.controller.changes.running
    running.config = running.config.model_copy(update={"alerts": load_text(ALERTS).config.alerts})
    for role in ("viewer", "admin"):
        page = web(role).get("/alerts")
        assert page.status_code == 200 and 'data-receiver="oncall"' in page.text and 'data-receiver="logs"' in page.text
        assert "https://hooks.example/pacslb" in page.text and "not running" in page.text and "5m" in page.text
        assert ('action="/alerts/test"' in page.text) == (role == "admin")
