"""The certificates, HA pair and alerts pages in a real browser (Playwright driving Debian's Chromium) against a real
appliance (`pacslb up`: HAProxy, the alerts service, the WebUI on a free port of 127.0.0.1), one per module, with one
browser per module. Users admin (the first admin's one-time password), operator and viewer.

- admin, /certificates: a key of another certificate is refused beside the key field; a certificate is uploaded,
  assigned to a plain-HTTP service (a revision: HAProxy then serves it on that port, read back over TLS), its delete
  is asked first and refused while the service uses it, it is replaced (HAProxy serves the new one, no reload); a key + CSR is made, its CSR signed by a CA of the test and
  the certificate uploaded without a key; a delete dismissed at the question deletes nothing.
- admin, /alerts: a test alert is delivered to a real webhook receiver of the test and fails for one whose port is
  closed, each result shown per receiver.
- every role, /ha: this appliance has no `ha` section, and the page says so and how to pair (no button).
- viewer and operator: the pages (and those of the WAF and GSLB issues) show no write control, /backup is not in their nav bar and is 403 by URL, and the
  form posts and the API (with their session's CSRF token) refuse their writes.

No page breaks the strict CSP. Screenshots go to /tmp/pacslb-webops-shots/ (looked at by the developer).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from pacslb import pki
from pacslb.store.users import UserStore
from support.alert_receivers import WebhookReceiver
from support.appliance import Appliance
from support.configs import http_check, real_server, service
from support.first_admin import own_admin_password
from support.net import free_port, loopback_host
from support.realservers import TinyHTTPServer
from support.wait import wait_until

playwright_sync = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path("/tmp/pacslb-webops-shots")
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage"]  # fmt: skip
PASSWORDS = {"operator": "operator long login words", "viewer": "viewer long login words"}


def config_text(vip: str, port: int, tls_port: int, server: TinyHTTPServer, hook: str, dead_hook: str) -> str:
    lines = [
        "version: 1",
        f"settings: {{max_connections: 2000, management: {{address: 127.0.0.1, port: 0}}, "
        f"health: {{agent_port: {free_port()}}}}}",
        "virtual_services:",
    ]  # other tests run appliances at the same time
    lines += service("web", "layer7-http", vip, port, [real_server(server)], health_check=http_check(500))
    lines += service("secure", "layer7-http", vip, tls_port, [real_server(server)], health_check=http_check(500),
                     tls="{certificates: [secure.pem]}")  # fmt: skip
    lines += ["alerts:", "  receivers:",
              f"    - {{name: oncall, type: webhook, url: '{hook}', events: [virtual-service-down]}}",
              f"    - {{name: dead, type: webhook, url: '{dead_hook}', events: [virtual-service-down], timeout: 1s}}"]  # fmt: skip
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """(appliance, WebUI URL, admin password, webhook receiver, the VIP and web's port)."""
    work = tmp_path_factory.mktemp("webops")
    (work / "secure.pem").write_bytes(pki.self_signed("secure.example").bundle())
    server = TinyHTTPServer("rs1", loopback_host(61)).start()
    receiver = WebhookReceiver().__enter__()
    appliance: Appliance | None = None
    try:
        vip = loopback_host(62)
        port = free_port(vip)
        dead = f"http://127.0.0.1:{free_port()}/nobody"  # a port nobody listens on: the delivery is refused
        appliance = Appliance.create(config_text(vip, port, free_port(vip), server, receiver.url, dead), work, "pacslb-webops-")
        appliance.up(wait=True)
        paths = appliance.paths
        url_file, password_file = paths.root / "management-url", paths.root / "initial-admin-password"
        wait_until(lambda: url_file.exists() and password_file.exists(), 30, what="the WebUI's address and admin password")
        users = UserStore(paths.users_db)
        for role, password in PASSWORDS.items():
            users.add(role, password, role)
        url = url_file.read_text().strip().rstrip("/")
        # the first admin's password is a one-time password: changed first, as a person does at the first login
        yield appliance, url, own_admin_password(url, paths.root), receiver, (vip, port)
    finally:
        try:
            if appliance is not None:
                appliance.shut_down()
        finally:
            receiver.__exit__(None, None, None)
            server.stop()


@pytest.fixture(scope="module")
def browser():
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    with playwright_sync.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS, timeout=60_000)
        try:
            yield chromium
        finally:
            chromium.close()


class Session:
    """One logged-in browser page; it answers the pages' confirmations as told and records their questions and any
    Content-Security-Policy violation."""

    def __init__(self, browser, url: str, username: str, password: str) -> None:
        self.url = url
        self.context = browser.new_context(ignore_https_errors=True, viewport={"width": 1440, "height": 900})
        self.context.set_default_timeout(30_000)
        self.page = self.context.new_page()
        self.questions: list[str] = []
        self.answer = True
        self.violations: list[str] = []
        self.page.on("dialog", self._dialog)
        self.page.on("console", lambda m: self.violations.append(m.text) if "Content Security Policy" in m.text else None)
        self.page.goto(url + "/login")
        self.page.fill("#username", username)
        self.page.fill("#password", password)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(url + "/")

    def _dialog(self, dialog) -> None:
        self.questions.append(dialog.message)
        dialog.accept() if self.answer else dialog.dismiss()

    def goto(self, path: str):
        return self.page.goto(self.url + path)

    def shoot(self, name: str) -> None:
        self.page.evaluate("window.scrollTo(0, 0)")
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    @property
    def csrf(self) -> str:
        return self.page.locator('input[name="csrf_token"]').first.get_attribute("value") or ""

    def close(self) -> None:
        assert not self.violations, self.violations
        self.context.close()


def served_common_name(host: str, port: int) -> str:
    pem = ssl.get_server_certificate((host, port), timeout=5)
    cert = x509.load_pem_x509_certificate(pem.encode())
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def sign(csr_pem: str, ca: pki.Issued) -> bytes:
    """The hospital's CA signs the CSR: a certificate for its key and names."""
    request = x509.load_pem_x509_csr(csr_pem.encode())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(request.subject).issuer_name(ca.cert.subject)
            .public_key(request.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=90))
            .add_extension(request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value, critical=False)
            .sign(ca.key, hashes.SHA256()))  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM)


def test_admin_uploads_makes_assigns_and_deletes_certificates(site, browser, tmp_path):
    appliance, url, password, _, (vip, port) = site
    expect = playwright_sync.expect
    mine, other = pki.self_signed("site.example", ["site.example"]), pki.self_signed("other.example")
    for name, data in (("site.crt", mine.cert_pem), ("site.key", mine.key_pem), ("other.key", other.key_pem)):
        (tmp_path / name).write_bytes(data)
    admin = Session(browser, url, "admin", password)
    page = admin.page
    try:
        admin.goto("/certificates")
        expect(page.locator('tr[data-certificate="secure.pem"]')).to_contain_text("named by path in the configuration")
        # a key of another certificate: refused beside the key field, nothing stored
        page.fill("#upload-name", "site")
        page.set_input_files("#upload-certificate", str(tmp_path / "site.crt"))
        page.set_input_files("#upload-key", str(tmp_path / "other.key"))
        page.click("#upload-form button[type=submit]")
        expect(page.locator('#upload-form .field[data-field="key"] .field-error')).to_contain_text(
            "does not belong to the certificate"
        )
        expect(page.locator('#upload-form .field[data-field="certificate"] .field-error')).to_have_count(0)
        expect(page.locator("#upload-name")).to_have_value("site")
        page.locator("#upload-form").scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "certificates-upload-error.png"))
        assert not (appliance.paths.certs_dir / "site.pem").exists()

        page.set_input_files("#upload-certificate", str(tmp_path / "site.crt"))
        page.set_input_files("#upload-key", str(tmp_path / "site.key"))
        page.click("#upload-form button[type=submit]")
        expect(page.locator(".flash-ok")).to_contain_text("certificate site stored")

        # assign it to the plain-HTTP service web: a revision, then HAProxy terminates TLS there with it
        row = page.locator('tr[data-certificate="site"]')
        row.locator("select[name=service]").select_option("web")
        row.locator("form.assign button").click()
        expect(page.locator(".flash-ok")).to_contain_text("applied")
        assert "Make site the TLS certificate of the chosen service?" in admin.questions[-1]
        wait_until(lambda: served_common_name(vip, port) == "site.example", 20, what="web serving site.example over TLS")
        expect(page.locator('tr[data-certificate="site"]')).to_contain_text("TLS of web")

        # its delete is asked first, and refused while web uses it
        page.locator('tr[data-certificate="site"] button.danger').click()
        assert "web uses it, so it will be refused" in admin.questions[-1]
        expect(page.locator(".flash-error")).to_contain_text("web uses it for TLS; assign another certificate first")
        assert (appliance.paths.certs_dir / "site.pem").exists()

        # replaced while web serves it: HAProxy takes the new one without a reload
        (tmp_path / "other.crt").write_bytes(other.cert_pem)
        page.fill("#upload-name", "site")
        page.set_input_files("#upload-certificate", str(tmp_path / "other.crt"))
        page.set_input_files("#upload-key", str(tmp_path / "other.key"))
        page.check("#upload-replace")
        page.click("#upload-form button[type=submit]")
        expect(page.locator(".flash-ok")).to_contain_text("HAProxy serves it now for web (no reload)")
        assert served_common_name(vip, port) == "other.example"

        # a key + CSR; the CA signs it; the certificate comes back without a key
        page.fill("#csr-name", "wfc")
        page.fill("#csr-common_name", "wfc.hospital.example")
        page.click("#csr-form button[type=submit]")
        expect(page.locator(".flash-ok")).to_contain_text("key and CSR wfc made")
        csr = page.locator('[data-request="wfc"] pre.csr').inner_text()
        assert "BEGIN CERTIFICATE REQUEST" in csr
        expect(page.locator('[data-request="wfc"] a[download]')).to_have_attribute("href", "/certificates/wfc/csr")
        admin.shoot("certificates-csr-waiting")
        (tmp_path / "wfc.crt").write_bytes(sign(csr, pki.make_ca("Hospital CA")))
        page.fill("#upload-name", "wfc")
        page.set_input_files("#upload-certificate", str(tmp_path / "wfc.crt"))
        page.click("#upload-form button[type=submit]")
        expect(page.locator(".flash-ok")).to_contain_text("certificate wfc stored")
        expect(page.locator('[data-request="wfc"]')).to_have_count(0)
        expect(page.locator('tr[data-certificate="wfc"]')).to_contain_text("Hospital CA")
        admin.shoot("certificates-admin")

        # a delete dismissed at the question deletes nothing; accepted, it deletes
        admin.answer = False
        page.locator('tr[data-certificate="wfc"] button.danger').click()
        assert "Delete the certificate wfc" in admin.questions[-1]
        expect(page.locator('tr[data-certificate="wfc"]')).to_have_count(1)
        admin.answer = True
        page.locator('tr[data-certificate="wfc"] button.danger').click()
        expect(page.locator(".flash-ok")).to_contain_text("certificate wfc deleted")
        assert not (appliance.paths.certs_dir / "wfc.pem").exists()
    finally:
        admin.close()


def test_admin_sends_a_test_alert_and_sees_the_ha_page_of_a_single_node(site, browser):
    _, url, password, receiver, _ = site
    expect = playwright_sync.expect
    admin = Session(browser, url, "admin", password)
    page = admin.page
    try:
        admin.goto("/alerts")
        expect(page.locator("tr[data-receiver]")).to_have_count(2)
        expect(page.locator('tr[data-receiver="oncall"]')).to_contain_text(receiver.url)
        page.click("form.test-alert button[type=submit]")
        expect(page.locator('tr[data-result="oncall"]')).to_contain_text("delivered")
        expect(page.locator('tr[data-result="dead"]')).to_contain_text("failed")
        assert "Send a test alert" in admin.questions[-1]
        assert any(json.loads(body)["event"] == "test" for body, _, _ in receiver.posts)
        expect(page.locator('tr[data-receiver="oncall"] td.num').nth(1)).to_have_text("1")  # sent
        expect(page.locator('tr[data-receiver="dead"]')).to_contain_text("refused")  # its last error
        admin.shoot("alerts-admin")

        admin.goto("/ha")  # this appliance has no `ha` section: the page says so and how to pair, with no button
        expect(page.locator("section.no-ha")).to_contain_text("no ha section")
        expect(page.locator("section.no-ha")).to_contain_text("docs/high-availability.md")
        expect(page.locator("main form")).to_have_count(0)
        admin.shoot("ha-no-pair")
        admin.goto("/backup")  # the backup issue's page: admins only, with its two forms
        expect(page.locator('main form[action="/backup/download"], main form[action="/backup/restore"]')).to_have_count(2)
    finally:
        admin.close()


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_viewers_and_operators_see_no_write_control_and_are_refused_anyway(site, browser, role):
    _, url, _, receiver, _ = site
    expect = playwright_sync.expect
    user = Session(browser, url, role, PASSWORDS[role])
    page = user.page
    try:
        nav = page.locator("header nav")
        for label in ("Certificates", "HA pair", "Alerts"):
            expect(nav.get_by_role("link", name=label)).to_have_count(1)
        expect(nav.locator('a[href="/backup"]')).to_have_count(0)
        assert user.goto("/backup").status == 403

        user.goto("/certificates")
        expect(page.locator("#read-only")).to_be_visible()
        expect(page.locator('tr[data-certificate="secure.pem"]')).to_have_count(1)
        expect(page.locator('main form, main button, main input[type="file"]')).to_have_count(0)
        user.shoot(f"certificates-{role}")
        user.goto("/alerts")
        expect(page.locator("tr[data-receiver]")).to_have_count(2)
        expect(page.locator("main form, main button")).to_have_count(0)
        user.shoot(f"alerts-{role}")
        for path in ("/waf", "/gslb"):  # the pages of the WAF and GSLB issues: read only for them too
            assert user.goto(path).status == 200, path
            expect(page.locator("main form, main button")).to_have_count(0)
        user.goto("/ha")  # this appliance has no `ha` section
        expect(page.locator("section.no-ha")).to_contain_text("no ha section")
        expect(page.locator("main form, main button")).to_have_count(0)

        posts_before = len(receiver.posts)
        token = user.csrf  # the logout form's: this session's CSRF token
        headers = {"X-CSRF-Token": token}
        for path, form in (("/certificates/self-signed", {"name": "x", "common_name": "x.example"}),
                           ("/certificates/secure/delete", {}), ("/alerts/test", {}), ("/ha/promote", {})):  # fmt: skip
            answer = page.request.post(url + path, form={"csrf_token": token, **form}, max_redirects=0)
            assert answer.status == 403, (path, answer.status)
        for path, body in (("/api/v1/certificates/self-signed", {"name": "x", "common_name": "x.example"}),
                           ("/api/v1/alerts/test", None)):  # fmt: skip
            answer = page.request.post(url + path, data=body, headers=headers)
            assert answer.status == 403, (path, answer.status)
        assert page.request.delete(url + "/api/v1/certificates/site", headers=headers).status == 403
        assert len(receiver.posts) == posts_before
        assert not (site[0].paths.certs_dir / "x.pem").exists()
    finally:
        user.close()
