"""The composition root's wiring of alerts: the change audit (applied, refused), the HA pair's VRRP record (role
changes, split brain), and the certificates watched for expiry. Events are caught at AlertService.emit."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from pacslb import pki
from pacslb.alerts.certificates import expiring, watched
from pacslb.appliance import Appliance
from pacslb.change.result import ChangeResult, Outcome
from pacslb.change.service import Changes, Origin, Running
from pacslb.engines.keepalived.engine import KeepalivedEngine
from pacslb.ha.pair import HAPair
from pacslb.ha.roles import Roles
from pacslb.model import Problem, load_text
from pacslb.paths import StatePaths

TEXT = """version: 1
virtual_services:
  - name: secure
    mode: layer7-http
    listen: [{address: 127.0.0.1, port: 8443}]
    tls: {certificates: [site.pem]}
    real_servers: [{name: rs1, address: 127.0.0.2, port: 80}]
"""


def appliance(tmp_path: Path) -> tuple[Appliance, list]:
    (tmp_path / "site.pem").write_bytes(pki.self_signed("site", ["localhost"], days=10).bundle())
    loaded = load_text(TEXT, base_dir=tmp_path)
    assert loaded.ok, loaded.problems
    built = Appliance(StatePaths(tmp_path / "state"), tmp_path / "pacslb.yaml", loaded.config)
    caught: list = []
    built.alerts.emit = caught.append  # type: ignore[method-assign]
    return built, caught


def test_applied_and_refused_changes_are_told_and_still_audited(tmp_path: Path):
    built, caught = appliance(tmp_path)
    (tmp_path / "state").mkdir()
    origin = Origin("alice", "api", "10.0.0.9")
    built.alert_wiring.audit(origin, "apply", "pacslb.yaml", ChangeResult(Outcome.APPLIED, "applied: 2 changes"))
    built.alert_wiring.audit(origin, "apply", "pacslb.yaml", ChangeResult(Outcome.INVALID, "invalid: nothing was changed",
                                                           problems=[Problem("virtual_services[x].port", "bad port")]))  # fmt: skip
    built.alert_wiring.audit(origin, "apply", "pacslb.yaml", ChangeResult(Outcome.UNCHANGED, "unchanged"))
    assert [a.event for a in caught] == ["config-applied", "config-refused"]
    assert caught[0].message == "the configuration applied by alice via api: applied: 2 changes"
    assert caught[1].severity == "warning" and "virtual_services[x].port: bad port" in caught[1].message
    assert built.paths.audit_log.exists()  # the audit log got all three


def test_role_changes_and_split_brain_reach_alerts_through_the_ha_pair(tmp_path: Path):
    built, caught = appliance(tmp_path)
    text = TEXT + ("ha: {role: primary, address: 10.0.0.2, peer_address: 10.0.0.3, interface: eth0, "
                   "floating_ips: [{address: 127.0.0.1}], sync: {peer_certificate: /etc/pacslb/peer.pem}}\n")  # fmt: skip
    config = load_text(text).config
    assert config is not None
    paths = StatePaths(tmp_path / "state")
    changes = Changes(paths, Running(config, tmp_path, tmp_path / "pacslb.yaml"), [], asyncio.Lock(), guard=lambda kind: None)
    pair = HAPair(
        changes,
        KeepalivedEngine(paths, asyncio.Lock()),
        Roles(paths.root, lambda: config.ha),
        on_event=built.alert_wiring.ha_event,
    )
    pair.event("BACKUP", "keepalived started")
    pair.event("MASTER", "the peer's adverts stopped")
    pair.event("MASTER", "again")  # no change: nothing told
    pair.event("UNKNOWN", "keepalived died; the controller starts it again")  # a restart: told as engine-restarted
    pair.event("SPLIT-BRAIN", "both nodes master; rule primary-wins: this node keeps the floating IPs")
    assert [(a.event, a.message) for a in caught] == [
        ("ha-role-change", "HA: this node went from UNKNOWN to BACKUP (keepalived started)"),  # info: a start
        ("ha-role-change", "HA: this node went from BACKUP to MASTER (the peer's adverts stopped)"),
        ("split-brain", "HA split brain: both nodes master; rule primary-wins: this node keeps the floating IPs"),
    ]
    assert [a.severity for a in caught] == ["info", "warning", "critical"]


def test_certificates_expiring_within_n_days_are_told(tmp_path: Path):
    built, _ = appliance(tmp_path)
    management = tmp_path / "state" / "management" / "server.pem"
    management.parent.mkdir(parents=True)
    management.write_bytes(pki.self_signed("mgmt", ["localhost"], days=400).bundle())
    files = watched(built.config, tmp_path, management)
    assert [label for label, _ in files] == ["virtual_services[secure].tls.certificates[0]", "settings.management (self-signed)"]
    now = dt.datetime.now(dt.timezone.utc).timestamp()
    [alert] = expiring(files, 30, now)  # the site certificate: 10 days; the management one: 400
    assert alert.event == "certificate-expiring" and alert.subject == str(tmp_path / "site.pem")
    assert alert.details["days_left"] == 9 and alert.severity == "warning"  # backdated 5 minutes: 9 whole days left
    assert "(virtual_services[secure].tls.certificates[0]) expires in 9 days" in alert.message
    assert len(expiring(files, 400, now)) == 2 and expiring(files, 5, now) == []
    [expired] = expiring(files[:1], 30, now + 11 * 86_400)
    assert expired.severity == "critical" and "has expired" in expired.message
