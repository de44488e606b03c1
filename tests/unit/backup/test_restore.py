"""Collecting and restoring with real stores, no engine (backup/collect.py, backup/restore.py): a fresh state
directory gets back the same revisions, secrets, users, keys and certificates; a backup is refused whole, with
nothing written, when it has no admin, a store of a newer schema, or certificates whose paths hold other content
(unless they are to be replaced, and then they are put back if the restore fails)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pacslb import pki
from pacslb.backup.archive import BackupError, pack, unpack
from pacslb.backup.collect import collect
from pacslb.backup.restore import CertificateWrites, check, fresh_problem, restore_fresh, restore_users
from pacslb.model import load_text
from pacslb.paths import StatePaths
from pacslb.store import RevisionStore, SecretStore
from pacslb.store.users import UserStore

SECRET = "amqp-check-secret-1"


def config(cert: Path) -> str:
    return f"""version: 1
virtual_services:
  - name: web
    mode: layer7-http
    listen: [{{address: 127.0.0.1, port: 8443}}]
    tls: {{certificates: [{cert}]}}
    real_servers: [{{name: rs1, address: 127.0.0.2, port: 80}}]
  - name: RMQ
    mode: layer7-tcp
    listen: [{{address: 127.0.0.1, port: 5672}}]
    health_check: {{type: amqp, username: pacs, password: "{SECRET}"}}
    real_servers: [{{name: mq1, address: 127.0.0.2, port: 5672}}]
"""


@pytest.fixture
def appliance(tmp_path) -> StatePaths:
    """A state directory as a running appliance leaves it: one applied revision with a secret, users, a key, a cert."""
    paths = StatePaths(tmp_path / "state")
    cert = tmp_path / "site" / "web.pem"
    cert.parent.mkdir()
    cert.write_bytes(pki.self_signed("web.example").bundle())
    loaded = load_text(config(cert), tmp_path)
    assert loaded.ok, loaded.problems
    store = RevisionStore(paths.revisions_db)
    rev = store.add(loaded.config.model_dump_json(), config(cert).replace(SECRET, "********"), author="t", message="m",
                    kind="file", parent=None, base_dir=str(tmp_path))  # fmt: skip
    store.mark_applied(rev.id)
    SecretStore(paths.secrets_db).put(rev.id, {"virtual_services[RMQ].health_check.password": SECRET})
    users = UserStore(paths.users_db)
    users.add("admin", "admin long password", "admin")
    users.add("op", "operator long password", "operator")
    users.add_api_key("op", "monitoring")
    pki.write_pem(paths.management_certificate, pki.self_signed("management").bundle())
    return paths


def backup_of(paths: StatePaths) -> bytes:
    members, about = collect(paths)
    return pack(members, about)


def test_a_fresh_state_directory_gets_everything_back(appliance, tmp_path):
    data = backup_of(appliance)
    cert = Path(unpack(data).manifest["certificates"][0]["path"])
    cert_bytes = cert.read_bytes()
    cert.unlink()  # a new machine: the certificate is not there yet
    target = StatePaths(tmp_path / "new")
    target.root.mkdir(mode=0o750)
    workdir = tmp_path / "work"
    workdir.mkdir(mode=0o700)
    checked = check(unpack(data), workdir)
    assert checked.config is not None and checked.revision_id == 1
    assert restore_fresh(checked, target)
    assert cert.read_bytes() == cert_bytes and cert.stat().st_mode & 0o777 == 0o600
    assert [r.summary() for r in RevisionStore(target.revisions_db).list()] == [
        r.summary() for r in RevisionStore(appliance.revisions_db).list()
    ]
    assert SecretStore(target.secrets_db).get(1) == {"virtual_services[RMQ].health_check.password": SECRET}
    assert {u.username for u in UserStore(target.users_db).list()} == {"admin", "op"}
    assert UserStore(target.users_db).verify("op", "operator long password") is not None
    assert target.management_certificate.read_bytes() == appliance.management_certificate.read_bytes()
    assert target.users_db.stat().st_mode & 0o777 == 0o600 and target.revisions_db.stat().st_mode & 0o777 == 0o640
    assert fresh_problem(target) is not None
    with pytest.raises(BackupError, match="not a fresh state directory"):
        restore_fresh(checked, target)


def test_a_certificate_with_other_content_is_refused_unless_replaced(appliance, tmp_path):
    data = backup_of(appliance)
    cert = Path(unpack(data).manifest["certificates"][0]["path"])
    renewed = pki.self_signed("renewed").bundle()
    cert.write_bytes(renewed)
    workdir = tmp_path / "work"
    workdir.mkdir()
    checked = check(unpack(data), workdir)
    assert [str(c.path) for c in checked.conflicts] == [str(cert)]
    target = StatePaths(tmp_path / "new")
    with pytest.raises(BackupError, match=f"certificates exist with other content than in the backup: {cert}"):
        restore_fresh(checked, target)
    assert cert.read_bytes() == renewed and not target.revisions_db.exists()
    writes = CertificateWrites()
    writes.write(checked, replace=True)
    assert cert.read_bytes() != renewed
    writes.undo()  # the restore failed later: what was there comes back
    assert cert.read_bytes() == renewed


def test_no_admin_is_refused(appliance, tmp_path):
    with sqlite3.connect(appliance.users_db) as db:
        db.execute("UPDATE users SET role = 'viewer' WHERE username = 'admin'")
    workdir = tmp_path / "work"
    workdir.mkdir()
    with pytest.raises(BackupError, match="no admin: a restore would lock every administrator out"):
        check(unpack(backup_of(appliance)), workdir)


def test_a_store_of_a_newer_schema_is_refused(appliance, tmp_path):
    with sqlite3.connect(appliance.users_db) as db:
        db.execute("PRAGMA user_version = 99")
    workdir = tmp_path / "work"
    workdir.mkdir()
    with pytest.raises(BackupError, match=r"state/users.sqlite: schema 99 was written by a newer pacslb"):
        check(unpack(backup_of(appliance)), workdir)


def test_users_of_a_running_appliance_are_replaced_in_one_go(appliance, tmp_path):
    data = backup_of(appliance)
    UserStore(appliance.users_db).add("late", "added after the backup", "admin")
    workdir = tmp_path / "work"
    workdir.mkdir()
    assert restore_users(check(unpack(data), workdir), appliance.users_db) == (2, 1)
    assert {u.username for u in UserStore(appliance.users_db).list()} == {"admin", "op"}


def test_a_certificate_gone_since_it_was_loaded_is_named_not_fatal(appliance, tmp_path):
    members, about = collect(appliance)
    cert = Path(about["certificates"][0]["path"])
    cert.unlink()
    members, about = collect(appliance)
    assert about["certificates"] == [] and about["certificates_missing"] == [
        {"path": str(cert), "fields": ["virtual_services[web].tls.certificates[0]"]}
    ]
