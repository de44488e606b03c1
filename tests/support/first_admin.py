"""The first admin of an appliance a test started: its one-time password (<state>/initial-admin-password) must be
changed before the API or the WebUI does anything else (issue 16), so a test that works as admin changes it first.

    password = own_admin_password(url, state_dir)     log in with the one-time password, set ADMIN_PASSWORD
"""

from __future__ import annotations

from pathlib import Path

import httpx

ADMIN_PASSWORD = "the tests own admin password"


def own_admin_password(url: str, state_dir: Path, timeout: float = 60) -> str:
    """Change the first admin's one-time password to ADMIN_PASSWORD (through the API, as a person would at the first
    login) and return it. The one-time password file goes away with it."""
    one_time = (Path(state_dir) / "initial-admin-password").read_text().strip()
    with httpx.Client(base_url=url, verify=False, timeout=timeout) as client:
        login = client.post("/api/v1/login", json={"username": "admin", "password": one_time})
        assert login.status_code == 200, login.text
        assert login.json()["must_change_password"] is True, "the first admin's password is a one-time password"
        changed = client.put("/api/v1/users/admin/password", json={"password": ADMIN_PASSWORD, "current_password": one_time},
                             headers={"X-CSRF-Token": login.json()["csrf_token"]})  # fmt: skip
        assert changed.status_code == 200, changed.text
    return ADMIN_PASSWORD
