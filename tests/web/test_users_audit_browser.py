"""The account, users and audit pages in a real browser (Playwright driving Debian's Chromium), one journey per role.

The WebUI runs in this process (the app of web/conftest.py: a real Appliance facade whose HAProxy does not run, real
users, sessions and audit log) under uvicorn over HTTPS on a free port of 127.0.0.1, in a thread stopped at teardown.
The first admin has a one-time password, as on a fresh appliance.

  admin     logs in with the one-time password, is held on /account until the new password passes the policy,
            adds a user (one-time password shown once), changes their role, resets and deletes them (each
            destructive button asks first; dismissing changes nothing), makes and deletes an API key, filters the
            audit log by user, object and time;
  operator  no admin page in the nav, 403 by URL, own password and keys on /account;
  viewer    the same, and the API refuses the admin writes from the browser's own session.

Screenshots go to /tmp/pacslb-webadmin-shots/ (looked at by hand; not in the repository).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from web.conftest import CONFIG, PASSWORD, StandInAppliance

from pacslb import pki
from pacslb.api.app import create_management_app
from pacslb.api.auth import AuthService
from pacslb.model import load_text
from pacslb.paths import StatePaths
from pacslb.store.audit import AuditLog
from pacslb.store.users import UserStore
from pacslb.web import mount_web
from support.wait import wait_until

playwright_sync = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path("/tmp/pacslb-webadmin-shots")
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage"]  # fmt: skip
ONE_TIME = "a one-time first password"
ADMIN_OWN = "the admin's own long password"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """(https URL, AuthService) of the WebUI served by uvicorn in a thread of this process."""
    import socket

    import uvicorn

    tmp = tmp_path_factory.mktemp("webadmin")
    loaded = load_text(CONFIG)
    config_file = tmp / "pacslb.yaml"
    config_file.write_text(CONFIG)
    state = tmp / "state"
    (state / "haproxy").mkdir(parents=True)
    controller = StandInAppliance(StatePaths(state), config_file, loaded.config).facade
    first = controller.changes.store.add(loaded.config.model_dump_json(), CONFIG, author="setup", message="first", kind="file",
                                         parent=None)  # fmt: skip
    controller.changes.store.mark_applied(first.id)
    auth = AuthService(UserStore(state / "users.sqlite"), AuditLog(state / "audit.sqlite"))
    auth.users.add("admin", ONE_TIME, "admin", must_change_password=True)  # as on a fresh appliance
    for role in ("operator", "viewer"):
        auth.users.add(role, PASSWORD, role)
    app = create_management_app(controller, auth)
    mount_web(app)
    cert = tmp / "web.pem"
    pki.write_pem(cert, pki.self_signed("127.0.0.1", ["127.0.0.1"]).bundle(), private=True)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # a free port, held from now on: no race with other tests
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, ssl_certfile=str(cert), log_level="warning", lifespan="off",
                                           timeout_graceful_shutdown=2))  # fmt: skip
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 30, what="the WebUI to listen")
        yield f"https://127.0.0.1:{port}", auth
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not stop"


@pytest.fixture(scope="module")
def browser():
    with playwright_sync.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS, timeout=60_000)
        try:
            yield chromium
        finally:
            chromium.close()


class Journey:
    """A browser context of one user, with CSP violations collected and screenshots by name."""

    def __init__(self, browser, url: str) -> None:
        self.url = url
        self.context = browser.new_context(ignore_https_errors=True, viewport={"width": 1440, "height": 900})
        self.context.set_default_timeout(20_000)
        self.page = self.context.new_page()
        self.violations: list[str] = []
        self.page.on("console", lambda m: self.violations.append(m.text) if "Content Security Policy" in m.text else None)

    def login(self, username: str, password: str) -> None:
        self.page.goto(self.url + "/login")
        self.page.fill("#username", username)
        self.page.fill("#password", password)
        self.page.click("button[type=submit]")
        self.page.wait_for_load_state()

    def shoot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()
        assert not self.violations, f"the pages broke the Content-Security-Policy: {self.violations[:5]}"


def test_admin_changes_the_one_time_password_then_manages_users_keys_and_audit(site, browser):
    url, auth = site
    expect = playwright_sync.expect
    journey = Journey(browser, url)
    page = journey.page
    try:
        # --- the one-time password: every page leads to /account until it is changed ---
        journey.login("admin", ONE_TIME)
        assert page.url == url + "/account"
        expect(page.locator(".flash-info")).to_contain_text("one-time password")
        expect(page.locator("header nav a")).to_have_count(0)
        page.goto(url + "/users")
        assert page.url == url + "/account"
        expect(page.locator(".flash-info")).to_contain_text("one-time password")
        page.fill("#pw-current-password", ONE_TIME)
        page.fill("#pw-password", "admin2024!")
        page.fill("#pw-password-again", "admin2024!")
        page.click("#password-form button[type=submit]")
        expect(page.locator('#password-form [data-field="password"] .field-error')).to_contain_text("user name")
        expect(page.locator('#password-form [data-field="current_password"] .field-error')).to_have_count(0)
        journey.shoot("admin-01-forced-change-error")
        page.fill("#pw-current-password", ONE_TIME)
        page.fill("#pw-password", ADMIN_OWN)
        page.fill("#pw-password-again", ADMIN_OWN)
        page.click("#password-form button[type=submit]")
        expect(page.locator(".flash-ok")).to_contain_text("password was changed")
        expect(page.locator('header nav a[href="/users"]')).to_be_visible()
        assert not auth.users.get("admin").must_change_password

        # --- an API key of my own, shown once, then deleted (after a dismissed confirmation) ---
        page.fill("#key-name", "monitoring")
        page.click("#key-form button[type=submit]")
        token = page.locator("#secret-value").inner_text()
        assert token.startswith("pacslb_") and auth.users.verify_api_key(token) is not None
        journey.shoot("admin-02-api-key-made")
        key_id = auth.users.api_keys("admin")[0].id
        page.once("dialog", lambda d: d.dismiss())
        page.locator(f'tr[data-key="{key_id}"] button.danger').click()
        assert auth.users.api_keys("admin"), "dismissed: nothing deleted"
        page.once("dialog", lambda d: d.accept())
        page.locator(f'tr[data-key="{key_id}"] button.danger').click()
        expect(page.locator(".flash-ok")).to_contain_text("deleted")
        assert auth.users.api_keys("admin") == []

        # --- users: add (one-time password shown once), role, reset, delete ---
        page.click('header nav a[href="/users"]')
        page.fill("#add-username", "carol")
        page.select_option("#add-role", "operator")
        page.click("#add-form button[type=submit]")
        first = page.locator("#secret-value").inner_text()
        assert auth.users.verify("carol", first) is not None and auth.users.get("carol").must_change_password
        expect(page.locator('tr[data-user="carol"] .badge')).to_contain_text("one-time")
        journey.shoot("admin-03-user-added")
        row = page.locator('tr[data-user="carol"]')
        row.locator("select[name=role]").select_option("viewer")
        row.locator(".role-form button").click()
        expect(page.locator(".flash-ok")).to_contain_text("carol is now viewer")
        page.once("dialog", lambda d: d.accept())
        page.locator('tr[data-user="carol"] button.reset').click()
        second = page.locator("#secret-value").inner_text()
        assert second != first and auth.users.verify("carol", second) is not None
        # the last admin: its demotion is refused, with the reason
        page.goto(url + "/users")
        admin_row = page.locator('tr[data-user="admin"]')
        admin_row.locator("select[name=role]").select_option("operator")
        admin_row.locator(".role-form button").click()
        expect(page.locator(".flash-error")).to_contain_text("last admin")
        page.once("dialog", lambda d: d.dismiss())
        page.locator('tr[data-user="carol"] button.danger').click()
        assert auth.users.get("carol") is not None
        page.once("dialog", lambda d: d.accept())
        page.locator('tr[data-user="carol"] button.danger').click()
        expect(page.locator(".flash-ok")).to_contain_text("carol and their API keys were deleted")
        expect(page.locator('tr[data-user="carol"]')).to_have_count(0)
        journey.shoot("admin-04-users")

        # --- audit: what was just done, filtered ---
        page.click('header nav a[href="/audit"]')
        expect(page.locator("#audit tbody tr").first).to_contain_text("user.delete")
        page.fill("#audit-user", "admin")
        page.fill("#audit-target", "carol")
        page.fill("#audit-since", time.strftime("%Y-%m-%d", time.gmtime()))
        page.click("#audit-filters button[type=submit]")
        rows = page.locator("#audit tbody tr")
        expect(rows).to_have_count(4)  # create, role, password, delete
        actions = [rows.nth(i).locator("td").nth(3).inner_text() for i in range(4)]
        assert actions == ["user.delete", "user.password", "user.role", "user.create"], actions
        journey.shoot("admin-05-audit-filtered")
        page.fill("#audit-until", "not a time")
        page.click("#audit-filters button[type=submit]")
        expect(page.locator('#audit-filters [data-field="until"] .field-error')).to_contain_text("YYYY-MM-DD")
    finally:
        journey.shoot("admin-99-last")
        journey.close()


@pytest.mark.parametrize("role", ["operator", "viewer"])
def test_other_roles_see_no_admin_page_and_the_api_refuses(site, browser, role):
    url, auth = site
    expect = playwright_sync.expect
    journey = Journey(browser, url)
    page = journey.page
    try:
        journey.login(role, PASSWORD)
        assert page.url == url + "/"
        for href in ("/users", "/audit", "/backup"):
            expect(page.locator(f'header nav a[href="{href}"]')).to_have_count(0)
            assert page.goto(url + href).status == 403
        page.goto(url + "/")
        page.click("a.account-link")
        expect(page.locator("h1")).to_have_text("Your account")
        # on /account: the own password and own API keys only; no control over anyone else
        forms = page.locator("main form")
        actions = {forms.nth(i).get_attribute("action") for i in range(forms.count())}
        assert actions == {"/account/password", "/account/api-keys"}, actions
        expect(page.locator('main a[href^="/users"]')).to_have_count(0)
        journey.shoot(f"{role}-01-account")
        # the API refuses the admin writes from this very session (with its CSRF token)
        csrf = page.locator('input[name="csrf_token"]').first.get_attribute("value")
        headers = {"X-CSRF-Token": csrf}
        made = page.request.post(url + "/api/v1/users", headers=headers,
                                 data={"username": "mallory", "password": "a long mallory password", "role": "admin"})  # fmt: skip
        assert made.status == 403, made.text()
        assert page.request.put(url + "/api/v1/users/admin/role", headers=headers, data={"role": "viewer"}).status == 403
        assert page.request.get(url + "/api/v1/audit").status == 403
        assert page.request.post(url + "/users/admin/delete", form={"csrf_token": csrf}).status == 403
        assert auth.users.get("mallory") is None and auth.users.get("admin").role == "admin"
    finally:
        journey.close()
