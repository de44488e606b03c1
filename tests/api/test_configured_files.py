"""Against a real appliance: an admin of the management API cannot make HAProxy serve the management key as a
maintenance page (directly, or through a symbolic link), nor widen settings.files."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


def _put_page(admin, page: str):
    current = admin.get("/api/v1/config").json()
    data = current["config"]
    web = next(vs for vs in data["virtual_services"] if vs["name"] == "web")
    web["fallback"] = {"maintenance_page": True, "page": page}
    return admin.put("/api/v1/config", json={"config": data, "base_revision": current["revision"]}), current["revision"]


def _refused(response, field: str, says: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["outcome"] == "invalid"
    assert [(p["path"], says in p["message"]) for p in body["problems"] if p["severity"] == "error"] == [(field, True)], body


def test_the_management_key_is_never_a_maintenance_page(api):
    admin = api.login("admin")
    state = api.appliance.state_dir
    key = state / "management" / "server.pem"
    assert key.exists()
    response, before = _put_page(admin, str(key))
    _refused(response, "virtual_services[web].fallback.page", f"{key} is in the appliance's state directory")
    # a link in an allowed directory (the configuration file's folder) leads to it: resolved first, refused
    link = api.appliance.config.parent / "maintenance.html"
    link.symlink_to(key)
    response, _ = _put_page(admin, str(link))
    _refused(response, "virtual_services[web].fallback.page", f"(which resolves to {key}) is in the appliance's state directory")
    # other files of the host, too
    response, _ = _put_page(admin, "/etc/shadow")
    _refused(response, "virtual_services[web].fallback.page", "/etc/shadow is not in an allowed directory")
    assert admin.get("/api/v1/config").json()["revision"] == before, "nothing was applied"
    assert "server.pem" not in (state / "haproxy" / "haproxy.cfg").read_text()


def test_a_public_page_in_an_allowed_directory_is_applied(api):
    admin = api.login("admin")
    page = api.appliance.config.parent / "down.html"
    page.write_text("<p>PACS maintenance</p>")
    page.chmod(0o644)
    response, before = _put_page(admin, str(page))
    assert response.status_code == 200, response.text
    assert str(page) in (api.appliance.state_dir / "haproxy" / "haproxy.cfg").read_text()


def test_settings_files_cannot_be_widened_through_the_api(api):
    admin = api.login("admin")
    current = admin.get("/api/v1/config").json()
    data = current["config"]
    data.setdefault("settings", {})["files"] = {"allowed_directories": ["/"]}
    response = admin.put("/api/v1/config", json={"config": data, "base_revision": current["revision"]})
    _refused(response, "settings.files.allowed_directories", "is changed only on the appliance's host")
