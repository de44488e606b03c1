"""The HA pair without processes: the secondary's refusal, what sync copies, split-brain overlap, pins."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pacslb.change.result import Outcome
from pacslb.change.service import Changes, Running
from pacslb.engines.keepalived.engine import KeepalivedEngine
from pacslb.ha import peer_link as ha_sync
from pacslb.ha.pair import HAPair
from pacslb.ha.roles import SYNC_KIND, Roles
from pacslb.ha.split_brain import master_intervals, overlaps
from pacslb.model import validate_data
from pacslb.paths import StatePaths


def _config(role: str = "secondary", **extra):
    data = {
        "version": 1,
        "settings": {"retries": 2},
        "virtual_services": [
            {
                "name": "web",
                "mode": "layer7-http",
                "listen": [{"address": "10.0.0.10", "port": 80}],
                "real_servers": [{"name": "rs1", "address": "10.0.1.1", "port": 80}],
            }
        ],  # fmt: skip
        "ha": {
            "role": role,
            "address": "10.0.0.3" if role == "secondary" else "10.0.0.2",
            "peer_address": "10.0.0.2" if role == "secondary" else "10.0.0.3",
            "interface": "eth0",
            "sync": {"peer_certificate": "/etc/pacslb/peer.pem"},
            **extra,
        },  # fmt: skip
    }
    loaded = validate_data(data)
    assert loaded.ok, loaded.problems
    return loaded.config


def _changes(tmp_path: Path, config, roles: Roles | None = None) -> Changes:
    paths = StatePaths(tmp_path)
    running = Running(config, tmp_path, tmp_path / "pacslb.yaml")
    return Changes(paths, running, [], asyncio.Lock(), guard=roles.guard if roles else (lambda kind: None))


def _subsystem(tmp_path: Path, role: str = "secondary") -> HAPair:
    paths = StatePaths(tmp_path)
    changes = _changes(tmp_path, _config(role))
    roles = Roles(paths.root, lambda: changes.config.ha)
    changes.guard = roles.guard
    return HAPair(changes, KeepalivedEngine(paths, asyncio.Lock()), roles)


def test_the_secondary_refuses_direct_changes_until_promoted(tmp_path: Path):
    ha = _subsystem(tmp_path).roles
    refusal = ha.guard("apply")
    assert refusal == ("this node is the secondary of an HA pair: make changes on the primary 10.0.0.2, "
                       "or promote this node with `pacslb ha promote`")  # fmt: skip
    assert ha.guard("server") == refusal
    assert ha.guard(SYNC_KIND) is None  # what the primary sends
    assert ha.takes_pushes and not ha.pushes
    ha.set_promoted(True)
    assert ha.guard("apply") is None and not ha.takes_pushes and not ha.pushes
    ha.set_promoted(False)
    assert ha.guard("apply") is not None and ha.takes_pushes


def test_the_primary_takes_changes(tmp_path: Path):
    ha = _subsystem(tmp_path, "primary").roles
    assert ha.guard("apply") is None and ha.pushes and not ha.takes_pushes


async def test_the_change_front_door_asks_the_guard_before_anything(tmp_path: Path):
    changes = _subsystem(tmp_path).changes
    changes.audit = None
    result = await changes.apply(text="version: 1\n")
    assert result.outcome is Outcome.REFUSED and "secondary of an HA pair" in result.message
    result = await changes.set_real_server("web", "rs1", weight=3)
    assert result.outcome is Outcome.REFUSED
    assert not (tmp_path / "revisions.sqlite").exists()  # nothing was recorded


async def test_receive_is_refused_by_a_node_that_pushes(tmp_path: Path):
    status, body = await _subsystem(tmp_path, "primary").receive({"config": {}})
    assert status == 409 and "it is the primary" in body["message"]


def test_sync_copies_all_but_the_node_local_parts():
    primary, secondary = _config("primary"), _config("secondary")
    assert "ha" not in ha_sync.synced_data(primary)
    assert ha_sync.synced_digest(primary) == ha_sync.synced_digest(secondary)
    changed = primary.model_copy(update={"settings": primary.settings.model_copy(update={"retries": 5})})
    assert ha_sync.synced_digest(changed) != ha_sync.synced_digest(secondary)
    merged = ha_sync.merge_local(ha_sync.synced_data(changed), secondary)
    loaded = validate_data(merged)
    assert loaded.ok
    assert loaded.config.ha == secondary.ha and loaded.config.settings.retries == 5


def test_master_intervals_and_their_overlap():
    mine = master_intervals([[10.0, "BACKUP"], [11.0, "MASTER"], [20.0, "BACKUP"]], now=30.0)
    theirs = master_intervals([[5.0, "MASTER"], [25.0, "BACKUP"], [28.0, "MASTER"]], now=30.0)
    assert mine == [(11.0, 20.0)]
    assert theirs == [(5.0, 25.0), (28.0, 30.0)]
    # a keepalived that ended without a trace: its mastership has no known end and counts for nothing
    assert master_intervals([[5.0, "MASTER"], [9.0, "START"], [9.1, "BACKUP"], [12.0, "MASTER"]], now=30.0) == [(12.0, 30.0)]
    assert master_intervals([[5.0, "MASTER"], [9.0, "UNKNOWN"]], now=30.0) == []
    assert master_intervals([[5.0, "MASTER"], [9.0, "STOP"]], now=30.0) == [(5.0, 9.0)]
    found = overlaps([[11.0, "MASTER"], [20.0, "BACKUP"]], [[5.0, "MASTER"], [25.0, "BACKUP"], [28.0, "MASTER"]], 30.0, 0.2)
    assert [(o.start, o.end, o.ongoing) for o in found] == [(11.0, 20.0, False)]
    found = overlaps([[11.0, "MASTER"]], [[28.0, "MASTER"]], 30.0, 0.2)
    assert [(o.start, o.end, o.ongoing) for o in found] == [(28.0, 30.0, True)]
    assert overlaps([[11.0, "MASTER"]], [[29.9, "MASTER"]], 30.0, 0.2) == []  # 100 ms: a handover


def test_pin_checks_the_fingerprint_and_refuses_a_ca(tmp_path: Path):
    cert = ha_sync.ensure_node_certificate(tmp_path / "a", "node a", ["10.0.0.2"])
    digest = ha_sync.fingerprint(cert.read_bytes())
    ha_sync.check_pin(cert, digest)
    with pytest.raises(ha_sync.PeerLinkError, match="does not match"):
        ha_sync.check_pin(cert, "0" * 64)
    from pacslb import pki

    ca = tmp_path / "ca.pem"
    ca.write_bytes(pki.make_ca("some CA").cert_pem)
    with pytest.raises(ha_sync.PeerLinkError, match="is a CA certificate"):
        ha_sync.check_pin(ca, None)
    assert ha_sync.ensure_node_certificate(tmp_path / "a") == cert  # made once, kept after
    assert (tmp_path / "a" / "ha" / "node.key").stat().st_mode & 0o777 == 0o600


def test_adding_removing_or_moving_the_ha_section_needs_a_restart():
    from pacslb.model.ha import restart_needed

    primary = _config("primary")
    assert restart_needed(None, None) is None
    assert restart_needed(primary.ha, primary.ha) is None
    tuned = primary.ha.model_copy(update={"garp_repeat": 9})  # other fields apply while running
    assert restart_needed(primary.ha, tuned) is None
    assert "adds an `ha` section" in restart_needed(None, primary.ha)
    removed = restart_needed(primary.ha, None)
    assert "this node is the primary of an HA pair" in removed and "nothing was changed" in removed
    moved = primary.ha.model_copy(update={"address": "10.0.0.4"})
    assert restart_needed(primary.ha, moved).startswith("ha.address changed")


async def test_a_file_without_the_nodes_ha_section_is_refused_and_nothing_recorded(tmp_path: Path):
    primary = _config("primary")
    changes = _changes(tmp_path, primary)
    lone = primary.model_copy(update={"ha": None})
    result = await changes.apply(data=lone.model_dump(mode="json", exclude_none=True))
    assert result.outcome is Outcome.REFUSED and "no `ha` section" in result.message, result.message
    assert changes.store.current_id() is None  # no revision was recorded


def test_a_short_split_brain_is_recorded_once_and_a_handover_not_at_all(tmp_path: Path):
    """Both nodes master for 0.4 s (a cut shorter than the sync interval) is a split brain; 5 ms is a handover."""
    ha = _subsystem(tmp_path, "primary")  # advert_interval 0.1 s: at least 0.2 s of overlap counts
    ha.vrrp_state = "MASTER"
    t = 1000.0
    ha.event("MASTER", "start", at=t)
    handover = {"vrrp_state": "BACKUP", "transitions": [[t - 10, "MASTER"], [t + 0.005, "BACKUP"]]}
    ha._check_split_brain(handover, now=t + 1)
    assert ha.split_brain is None

    cut = {"vrrp_state": "BACKUP", "transitions": [*handover["transitions"], [t + 50, "MASTER"], [t + 50.4, "BACKUP"]]}
    ha._check_split_brain(cut, now=t + 51)
    assert ha.split_brain is not None and ha.split_brain["rule"] == "primary-wins"
    assert ha.split_brain["since"] == t + 50 and ha.split_brain["resolved"] == t + 50.4
    assert ha.split_brain["seconds"] == 0.4
    recorded = [e for e in ha.events if e.state == "SPLIT-BRAIN"]
    assert len(recorded) == 1 and "both nodes were master for 0.40s" in recorded[0].reason
    ha._check_split_brain(cut, now=t + 52)  # the next answer: the same split brain, not told again
    assert len([e for e in ha.events if e.state == "SPLIT-BRAIN"]) == 1


def test_an_overlap_of_less_than_two_adverts_is_no_split_brain(tmp_path: Path):
    """The threshold the docs promise holds for an overlap that goes on too (the live check had none)."""
    ha = _subsystem(tmp_path, "secondary")
    t = 1000.0
    ha.event("BACKUP", "start", at=t)
    ha.event("MASTER", "the peer stopped advertising", at=t + 10)
    ha.vrrp_state = "MASTER"
    peer = {"vrrp_state": "MASTER", "transitions": [[t, "MASTER"]]}  # the peer's answer trails its stop
    ha._check_split_brain(peer, now=t + 10.15)
    assert ha.split_brain is None
    ha._check_split_brain(peer, now=t + 10.5)  # still both master after five adverts: a split brain, going on
    assert ha.split_brain is not None and ha.split_brain["resolved"] is None and ha.split_brain["seconds"] == 0.5
    peer = {"vrrp_state": "BACKUP", "transitions": [[t, "MASTER"], [t + 10.7, "BACKUP"]]}
    ha._check_split_brain(peer, now=t + 11)
    assert ha.split_brain["resolved"] == t + 10.7 and ha.split_brain["seconds"] == 0.7
    assert len([e for e in ha.events if e.state == "SPLIT-BRAIN"]) == 1


def test_a_graceful_stop_is_no_split_brain(tmp_path: Path):
    """`pacslb stop` on the master: the controller marks STOP before keepalived sends priority 0 (issue 13:
    "split brain at ..., resolved -" after every graceful stop)."""
    ha = _subsystem(tmp_path, "secondary")
    t = 1000.0
    ha.event("BACKUP", "start", at=t)
    ha.event("MASTER", "the peer sent priority 0", at=t + 10.02)
    ha.vrrp_state = "MASTER"
    # the peer comes back: its record holds the controller's STOP, keepalived's own STOP later, then a fresh start
    peer = {"vrrp_state": "BACKUP", "transitions": [[t, "MASTER"], [t + 10.0, "STOP"], [t + 10.4, "STOP"],
                                                    [t + 30, "START"], [t + 30.1, "BACKUP"]]}  # fmt: skip
    ha._check_split_brain(peer, now=t + 31)
    assert ha.split_brain is None


def test_a_hard_failover_and_rejoin_is_no_split_brain(tmp_path: Path):
    """The master dies (kill -9, power): its record ends with MASTER; it comes back with a fresh keepalived.
    Read up to its START, its mastership covered its whole death: "both nodes were master for 6.85s" (issue 13)."""
    ha = _subsystem(tmp_path, "secondary")
    t = 1000.0
    ha.event("BACKUP", "start", at=t)
    ha.event("MASTER", "the peer stopped advertising", at=t + 10.36)
    ha.vrrp_state = "MASTER"
    peer = {"vrrp_state": "BACKUP", "transitions": [[t, "MASTER"], [t + 17.2, "START"], [t + 17.3, "BACKUP"]]}
    ha._check_split_brain(peer, now=t + 18)
    assert ha.split_brain is None
    # the controller found keepalived dead and started it again (the supervisor's UNKNOWN line): the same
    peer = {"vrrp_state": "BACKUP", "transitions": [[t, "MASTER"], [t + 11, "UNKNOWN"], [t + 11, "START"], [t + 11.1, "BACKUP"]]}
    ha._check_split_brain(peer, now=t + 12)
    assert ha.split_brain is None


def test_a_split_brain_over_before_the_controller_started_is_not_told_again(tmp_path: Path):
    ha = _subsystem(tmp_path, "primary")
    t = 1000.0
    ha.event("MASTER", "start", at=t)
    ha.vrrp_state = "MASTER"
    ha.watching_since = t + 60
    peer = {"vrrp_state": "BACKUP", "transitions": [[t + 50, "MASTER"], [t + 51, "BACKUP"]]}
    ha._check_split_brain(peer, now=t + 61)
    assert ha.split_brain is None


async def test_a_push_carries_the_secrets_values_to_the_peer(tmp_path: Path):
    """HA sync sends secrets with their values (the peer link is mutually authenticated TLS): the primary pushes
    its current revision, whose stored copy holds only the placeholder, and the secondary's probes get the
    real password. The push goes through HAPair._push and HAPair.receive; only the HTTPS client is stood in."""
    from pacslb.model.secrets import revealed_dump

    secret = "ha-Synced-Pa55word"

    def pin(role: str) -> dict:
        """A peer certificate that validates: in the node's configuration folder (settings.files.allowed_directories),
        not in its state directory."""
        return {"peer_certificate": str(ha_sync.ensure_node_certificate(tmp_path / role / "etc"))}

    def node(role: str) -> HAPair:
        paths = StatePaths(tmp_path / role / "state")
        etc = tmp_path / role / "etc"
        changes = Changes(paths, Running(_config(role, sync=pin(role)), etc, etc / "pacslb.yaml"), [], asyncio.Lock())
        roles = Roles(paths.root, lambda: changes.config.ha)
        changes.guard = roles.guard
        return HAPair(changes, KeepalivedEngine(paths, asyncio.Lock()), roles)

    primary, secondary = node("primary"), node("secondary")
    data = revealed_dump(_config("primary", sync=pin("primary")))
    data["virtual_services"][0]["health_check"] = {"type": "amqp", "username": "pacs", "password": secret}
    applied = await primary.changes.apply(data=data)
    assert applied.outcome is Outcome.APPLIED, applied.problems
    assert secret.encode() not in b"".join(f.read_bytes() for f in (tmp_path / "primary" / "state").glob("revisions.sqlite*"))
    sent: list[dict] = []

    class Answer:
        def __init__(self, status: int, body: dict) -> None:
            self.status_code, self.body, self.text = status, body, str(body)

        def json(self) -> dict:
            return self.body

    class PeerLink:  # the peer's HTTPS endpoint, in-process
        async def __aenter__(self):
            return self

        async def __aexit__(self, *exc) -> None:
            return None

        async def post(self, url: str, json: dict) -> Answer:
            sent.append(json)
            return Answer(*await secondary.receive(json))

    primary._client = lambda timeout: PeerLink()
    await primary._push({})
    assert primary.last_push["ok"], primary.last_push
    assert sent[0]["config"]["virtual_services"][0]["health_check"]["password"] == secret
    check = secondary.changes.config.service("web").health_check
    assert check.password.reveal() == secret and secondary.changes.config.ha.role == "secondary"
    assert secret.encode() not in b"".join(f.read_bytes() for f in (tmp_path / "secondary" / "state").glob("revisions.sqlite*"))
    assert ha_sync.synced_digest(secondary.changes.config) == ha_sync.synced_digest(primary.changes.config)
