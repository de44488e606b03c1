"""Backup and restore through the management API and the WebUI, in-process over a real Appliance whose HAProxy does
not run (web/conftest.py): admin only, audited, a restore that the engines refuse changes nothing (users neither),
a restore of what runs puts back the backup's users and API keys; the WebUI page downloads and uploads the same."""

from __future__ import annotations

import io

from pacslb.backup.archive import unpack

PASSPHRASE = "a long backup passphrase"


def api_client(web, role: str = "admin"):
    client = web(role)
    client.headers["X-CSRF-Token"] = client.csrf
    return client


def audit_actions(web_app) -> list[tuple[str, str]]:
    return [(e.action, e.outcome) for e in web_app.auth.audit_log.list(limit=100)]


def usernames(web_app) -> set[str]:
    return {u.username for u in web_app.auth.users.list()}


def test_only_admins_back_up_and_restore(web):
    for role in ("operator", "viewer"):
        client = api_client(web, role)
        assert client.post("/api/v1/backup", json={}).status_code == 403
        assert client.post("/api/v1/restore", content=b"x").status_code == 403
        assert client.get("/backup", follow_redirects=False).status_code == 403
        assert 'href="/backup"' not in client.get("/").text
    assert 'href="/backup"' in web("admin").get("/").text


def test_api_backup_then_restore_of_what_runs_puts_back_users_and_keys(web, web_app):
    admin = api_client(web)
    key, token = web_app.auth.users.add_api_key("operator", "monitoring")
    answer = admin.post("/api/v1/backup", json={"passphrase": PASSPHRASE})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-disposition"].startswith("attachment; filename=")
    backup = unpack(answer.content, PASSPHRASE)
    assert {"state/revisions.sqlite", "state/users.sqlite"} <= set(backup.members)

    web_app.auth.users.add("zed", "zed's long password", "admin")
    web_app.auth.users.delete_api_key(key.id)
    wrong = admin.post("/api/v1/restore", content=answer.content, headers={"X-Backup-Passphrase": "not the passphrase"})
    assert wrong.status_code == 422 and "passphrase is wrong" in wrong.json()["message"]
    tampered = bytearray(answer.content)
    tampered[-20] ^= 1
    refused = admin.post("/api/v1/restore", content=bytes(tampered), headers={"X-Backup-Passphrase": PASSPHRASE})
    assert refused.status_code == 422
    assert "zed" in usernames(web_app)

    restored = admin.post("/api/v1/restore", content=answer.content, headers={"X-Backup-Passphrase": PASSPHRASE})
    assert restored.status_code == 200, restored.text
    assert restored.json()["outcome"] in ("applied", "unchanged")  # one revision at most, through the front door
    assert restored.json()["restored"]["users_restored"] == 3
    assert usernames(web_app) == {"admin", "operator", "viewer"}
    assert web_app.auth.users.verify_api_key(token) is not None
    actions = audit_actions(web_app)
    assert ("backup.create", "ok") in actions and ("backup.restore", "ok") in actions
    assert ("backup.restore", "invalid") in actions


def test_a_restore_the_engines_refuse_changes_nothing(web, web_app):
    admin = api_client(web)
    plain = admin.post("/api/v1/backup").content
    store = web_app.controller.changes.store
    current = store.current_id()
    # what runs changes after the backup: restoring must reach the engines, and this HAProxy does not run
    config = web_app.controller.changes.running.config
    web_app.controller.changes.running.config = config.model_copy(update={"virtual_services": config.virtual_services[:1]})
    web_app.auth.users.add("zed", "zed's long password", "admin")
    answer = admin.post("/api/v1/restore", content=plain)
    assert answer.status_code in (409, 422), answer.text
    assert "users and API keys are unchanged" in answer.json()["message"]
    assert "zed" in usernames(web_app)
    assert store.current_id() == current  # no revision was applied
    assert ("backup.restore", answer.json()["outcome"]) in audit_actions(web_app)


def test_the_webui_page_downloads_and_restores(web, web_app):
    admin = web("admin")
    page = admin.get("/backup")
    assert page.status_code == 200 and "Download backup" in page.text and 'enctype="multipart/form-data"' in page.text
    download = admin.form_post("/backup/download", {"passphrase": PASSPHRASE})
    assert download.status_code == 200 and unpack(download.content, PASSPHRASE).manifest["revision"] == 1
    short = admin.form_post("/backup/download", {"passphrase": "short"})
    assert short.status_code == 303 and "at least 10" in admin.get("/backup").text

    web_app.auth.users.add("zed", "zed's long password", "viewer")
    upload = admin.post("/backup/restore", data={"csrf_token": admin.csrf, "passphrase": PASSPHRASE},
                        files={"file": ("site.backup", io.BytesIO(download.content), "application/octet-stream")},
                        follow_redirects=False)  # fmt: skip
    assert upload.status_code == 303
    shown = admin.get("/backup").text
    assert "restored 3 users" in shown, shown
    assert "zed" not in usernames(web_app)
