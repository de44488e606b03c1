"""A node's BGP and BFD sessions in its member key (cluster/sessions.py, pure), from the BIRD engine's state."""

from __future__ import annotations

from pacslb.cluster.sessions import MAX_SESSIONS, MAX_STATE, in_words, summary

DETAIL = {
    "announced": ["10.66.0.10"],
    "bgp": [
        {"neighbor": "10.88.0.1", "remote_as": 65000, "protocol": "uplink1", "state": "up", "since": "12:00:01",
         "info": "Established", "established": True},
        {"neighbor": "fd00:88::1", "remote_as": 65000, "protocol": "uplink2", "state": "start", "since": "12:00:01",
         "info": "Active        Socket: Connection refused", "established": False},
    ],
    "bfd": [{"address": "10.88.0.1", "interface": "l0", "state": "Up", "since": "12:00:02"},
            {"address": "fd00:88::1", "interface": "l0", "state": "Down", "since": "12:00:02"}],
}  # fmt: skip


def test_the_sessions_in_the_member_keys_form_and_in_words() -> None:
    found = summary(DETAIL)
    assert found == {
        "bgp": [{"neighbor": "10.88.0.1", "established": True, "state": "Established"},
                {"neighbor": "fd00:88::1", "established": False, "state": "Active        Socket: Connection refused"}],
        "bfd": [{"address": "10.88.0.1", "state": "Up"}, {"address": "fd00:88::1", "state": "Down"}],
    }  # fmt: skip
    assert in_words(found) == "BGP 1/2 up, BFD 1/2 up"
    assert in_words({"bgp": found["bgp"], "bfd": []}) == "BGP 1/2 up"  # BFD off: not named


def test_nothing_reported_is_none_and_a_dash() -> None:
    assert summary({}) is None and summary(None) is None and summary({"announced": []}) is None
    assert in_words(None) == "-"


def test_the_member_key_stays_small() -> None:
    many = {"bgp": [{"neighbor": f"10.0.0.{i}", "info": "x" * 500, "established": False} for i in range(40)], "bfd": []}
    found = summary(many)
    assert found is not None and len(found["bgp"]) == MAX_SESSIONS
    assert all(len(s["state"]) == MAX_STATE for s in found["bgp"])
