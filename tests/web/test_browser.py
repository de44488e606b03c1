"""The WebUI in a real browser (Playwright driving Debian's Chromium) against a real appliance.

`pacslb up` runs the True PACS template in front of the simulated True PACS services (the wiring of
`pacslb demo`, as in tests/e2e/test_true_pacs.py), with the management API and WebUI on a free port of
127.0.0.1 (settings.management.port 0; the address is read from <state>/management-url, the first
admin's one-time password from <state>/initial-admin-password). Everything stays on loopback.

The browser logs in, sees all 35 True PACS services on the dashboard (no page breaks the strict CSP), drains a real server with its
button and watches the state turn DRAIN, watches the dashboard refresh by itself after a drain made from
the CLI, enters an invalid health-check interval and rise and sees each error beside its field, and
rolls back a revision. A screenshot of every page goes to test-artifacts/webui/ (git-ignored).
"""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from pacslb.demo.truepacs import TruePacsDemo
from pacslb.store.metrics import MetricsStore
from pacslb.templates.true_pacs import SERVICES
from pacslb.web.history import metrics_path
from support.first_admin import own_admin_password
from support.true_pacs import true_pacs_appliance
from support.wait import wait_until

playwright_sync = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

VIP = "127.0.0.1"
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "webui"
SERVICES_LIFETIME = 900.0  # the simulated services end by themselves after this, whatever happens
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage"]  # fmt: skip
DRAINED = "WFC_inference_443"  # its first real server is drained with the button; rolled back at the end
CLI_DRAINED = "WFC_RMQAMQP"  # its first real server is drained from the CLI: the dashboard refreshes by itself
CHECKED = "WFC_inference_443"  # its health check gets invalid values


def with_management_on_a_free_port(config_file: Path) -> None:
    """settings.management.port 0: the WebUI takes a free port (other tests run at the same time)."""
    data = yaml.safe_load(config_file.read_text())
    settings = data.setdefault("settings", {})
    settings["management"] = {**settings.get("management", {}), "address": VIP, "port": 0}
    config_file.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture(scope="module")
def appliance(tmp_path_factory):
    """The True PACS appliance with its WebUI: (plan, appliance, WebUI URL, admin password)."""

    def prepare(plan) -> None:
        with_management_on_a_free_port(plan.config_file)

    with true_pacs_appliance(tmp_path_factory.mktemp("webui"), "pacslb-ui-", VIP, SERVICES_LIFETIME, prepare) as run:
        state_dir = run.appliance.state_dir
        url_file, password_file = state_dir / "management-url", state_dir / "initial-admin-password"
        wait_until(lambda: url_file.exists() and password_file.exists(), 30, what="the WebUI's address and admin password")
        url = url_file.read_text().strip().rstrip("/")
        yield run.plan, run.appliance, url, own_admin_password(url, state_dir)  # the one-time password changed first


@pytest.fixture(scope="module")
def browser():
    with playwright_sync.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS, timeout=60_000)
        try:
            yield chromium
        finally:
            chromium.close()


def shoot(page, name: str, full_page: bool = True) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    if full_page:
        page.evaluate("window.scrollTo(0, 0)")  # else the sticky nav bar is drawn where the page was scrolled to
    page.screenshot(path=str(path), full_page=full_page)
    return path


def traffic(plan: TruePacsDemo, seconds: float) -> threading.Thread:
    """Plain-HTTP GETs through VIP 3 for a while, so that the graphs have something to draw."""
    port = plan.vip_port("WFC_http")
    children = [s for s in SERVICES if s.parent == "WFC_http"]

    def run() -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for child in children[:4]:
                try:
                    urllib.request.urlopen(f"http://{VIP}:{port}{child.path_prefix}/x", timeout=5).read()
                except Exception:  # noqa: BLE001 - errors are data for the graphs too
                    pass
            time.sleep(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_webui_in_chromium(appliance, browser):
    plan, running, url, password = appliance
    load = traffic(plan, 60)
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1440, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    questions: list[str] = []  # every confirm() the pages ask; `dismiss_next` answers the next one with "Cancel"
    dismiss_next: list[bool] = []

    def answer(dialog) -> None:
        questions.append(dialog.message)
        dialog.dismiss() if dismiss_next and dismiss_next.pop() else dialog.accept()

    page.on("dialog", answer)  # the rollback's "are you sure?", the drain's and halt's questions
    # the strict Content-Security-Policy (no inline script or style): Chromium reports every violation on the console
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None)
    expect = playwright_sync.expect
    try:
        # --- login: a wrong password first, then the right one; nothing in the URL ---
        page.goto(url + "/")
        assert page.url.endswith("/login")
        page.fill("#username", "admin")
        page.fill("#password", "not the password")
        page.click("button[type=submit]")
        expect(page.locator(".error-box")).to_contain_text("Wrong user name or password")
        shoot(page, "01-login-failed", full_page=False)
        page.fill("#password", password)
        page.click("button[type=submit]")
        page.wait_for_url(url + "/")
        assert password not in page.url

        # --- the dashboard: all 35 True PACS services, as 6 VIP groups with their backend-only services, live ---
        expect(page.locator("tbody.vs")).to_have_count(35)
        expect(page.locator("details.group")).to_have_count(6)
        for spec in SERVICES:
            expect(page.locator(f'tbody.vs[data-service="{spec.name}"]')).to_have_count(1)
            if spec.parent:  # nested under the VIP whose rules reach it
                expect(
                    page.locator(f'details.group[data-group="{spec.parent}"] tbody.vs[data-service="{spec.name}"]')
                ).to_have_count(1)
        vs = DRAINED
        group = page.locator(f'details.group:has(tbody.vs[data-service="{vs}"])')
        rs = page.locator(f'tbody.vs[data-service="{vs}"] tr.rs-row').first.get_attribute("data-real-server")
        row = page.locator(f'tbody.vs[data-service="{vs}"] tr[data-real-server="{rs}"]')
        expect(row.locator("[data-state]")).to_have_attribute("data-state", "UP", timeout=60_000)
        wait_until(lambda: page.locator("details.group[data-problem=yes]").count() == 0, 60, what="every group well")
        page.click('button[data-expand="close"]')
        # a 1440x900 screen: no horizontal scroll, and the collapsed groups far shorter than the flat list's ~3,500 px
        width, height = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
        assert width <= 1440 and height < 1200, (width, height)
        shoot(page, "02-dashboard")
        page.click('button[data-expand="open"]')
        width, height = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
        assert width <= 1440, width  # every group open: still no horizontal scroll
        shoot(page, "02-dashboard-open")
        page.click('button[data-expand="close"]')
        page.set_viewport_size({"width": 1180, "height": 620})  # a small one for docs/img
        shoot(page, "02-dashboard-top", full_page=False)
        page.set_viewport_size({"width": 1440, "height": 900})

        # --- filters: by name, then by state; the live refresh keeps them ---
        page.fill("#filter-name", "inference_443")
        expect(page.locator("details.group:visible")).to_have_count(1)
        expect(page.locator("tbody.vs:visible")).to_have_count(1)
        expect(page.locator(f'tbody.vs[data-service="{vs}"]')).to_be_visible()
        before = page.locator(".refresh-status").inner_text()
        expect(page.locator(".refresh-status")).not_to_have_text(before, timeout=10_000)  # refreshed meanwhile
        expect(page.locator("tbody.vs:visible")).to_have_count(1)
        shoot(page, "02-dashboard-filtered")
        page.fill("#filter-name", "wfc_10443")  # a VIP's name: its whole block
        expect(page.locator("details.group:visible")).to_have_count(1)
        expect(page.locator('details.group[data-group="WFC_10443"] tbody.vs:visible')).to_have_count(4)
        page.fill("#filter-name", "")
        page.select_option("#filter-state", "drain")
        expect(page.locator("details.group:visible")).to_have_count(0)
        page.select_option("#filter-state", "")
        expect(page.locator("details.group:visible")).to_have_count(6)
        expect(group).not_to_have_attribute("open", "")

        # --- drain with the button: it asks first (dismissed: nothing happens), then the state turns DRAIN (amber) ---
        group.locator("summary").click()
        expect(row).to_be_visible()
        dismiss_next.append(True)
        row.locator("button.btn-drain").click()
        assert questions and questions[-1].startswith(f"Drain {rs} of {vs}?"), questions
        expect(row.locator("[data-state]")).to_have_attribute("data-state", "UP")
        row.locator("button.btn-drain").click()
        page.wait_for_url(url + "/*")
        expect(page.locator(".flash-ok")).to_contain_text("applied")
        row = page.locator(f'tbody.vs[data-service="{vs}"] tr[data-real-server="{rs}"]')
        expect(row).to_be_visible()  # back at that service, its group open
        expect(row.locator("[data-state]")).to_have_attribute("data-state", "DRAIN")
        expect(row.locator(".badge")).to_have_class("badge st-drain")
        expect(row.locator("button.btn-drain")).to_be_disabled()
        # the other server is now the last one up: its halt says what happens to the service
        last = page.locator(f'tbody.vs[data-service="{vs}"] tr.rs-row:not([data-real-server="{rs}"])').first
        expect(last.locator("form:has(button.btn-halt)")).to_have_attribute(
            "data-confirm", re.compile(f"service {vs} will have no server: new requests .* get 503")
        )
        shoot(page, "03-dashboard-drained")

        # --- a drain made elsewhere (the CLI) shows up without reloading the page ---
        page.locator(f'details.group:has(tbody.vs[data-service="{CLI_DRAINED}"]) > summary').click()
        other = page.locator(f'tbody.vs[data-service="{CLI_DRAINED}"] tr.rs-row').first
        other_name = other.get_attribute("data-real-server")
        expect(other.locator("[data-state]")).not_to_have_attribute("data-state", "DRAIN")
        done = running.cli("server", "drain", CLI_DRAINED, other_name)
        assert done.returncode == 0, done.stderr
        expect(page.locator(f'tbody.vs[data-service="{CLI_DRAINED}"] tr[data-real-server="{other_name}"] [data-state]')
               ).to_have_attribute("data-state", "DRAIN", timeout=20_000)  # fmt: skip
        expect(page.locator(".refresh-status")).to_contain_text("live")

        # --- an invalid health check: each error beside its field, nothing applied ---
        page.goto(f"{url}/services/{CHECKED}")
        shoot(page, "04-service")
        expect(page.locator('#health-check .field[data-field="calling_ae"]')).to_be_hidden()  # not for an https check
        page.fill("#hc-interval", "abc")
        page.fill("#hc-rise", "0")
        page.locator("#health-check button[type=submit]").click()
        interval = page.locator('#health-check .field[data-field="interval"]')
        rise = page.locator('#health-check .field[data-field="rise"]')
        expect(interval.locator(".field-error")).to_be_visible()
        expect(rise.locator(".field-error")).to_contain_text("greater than or equal to 1")
        expect(page.locator('#health-check .field[data-field="fall"] .field-error')).to_have_count(0)
        expect(page.locator("#hc-interval")).to_have_value("abc")
        interval.scroll_into_view_if_needed()
        shoot(page, "05-health-check-errors")
        page.locator("#health-check").screenshot(path=str(ARTIFACTS / "05-health-check-card.png"))

        # --- corrected, it applies: a revision authored by the logged-in user ---
        page.fill("#hc-interval", "6s")
        page.fill("#hc-rise", "2")
        page.locator("#health-check button[type=submit]").click()
        expect(page.locator(".flash-ok")).to_contain_text("applied")
        expect(page.locator("#hc-interval")).to_have_value("6s")
        expect(page.locator("#health-check .field-error")).to_have_count(0)

        # --- revisions: roll back to the one before the button's drain ---
        page.goto(f"{url}/revisions")
        expect(page.locator("table.list tbody tr").first).to_contain_text(f"health check of {CHECKED} (WebUI)")
        expect(page.locator("table.list tbody tr").first).to_contain_text("admin")
        shoot(page, "06-revisions")
        drain_row = page.locator("table.list tbody tr", has_text=f"drain {vs}/{rs}").first
        drain_id = int(drain_row.locator("td").first.inner_text())
        before = drain_id - 1
        page.goto(f"{url}/revisions/{before}")
        expect(page.locator("#rollback")).to_contain_text(f"virtual_services[{vs}].real_servers[{rs}].state")
        shoot(page, "07-revision-diff")
        page.locator("#rollback button[type=submit]").click()
        expect(page.locator(".flash-ok")).to_contain_text("applied")
        expect(page.locator("h1")).not_to_have_text(f"Revision {before}")
        shoot(page, "08-rolled-back")
        page.goto(url + "/")
        expect(page.locator(f'tbody.vs[data-service="{vs}"] tr[data-real-server="{rs}"] [data-state]')
               ).to_have_attribute("data-state", "UP", timeout=30_000)  # fmt: skip

        # --- certificates, graphs (after some samples), log ---
        page.goto(f"{url}/certificates")
        expect(page.locator("table.list")).to_contain_text("vip.pem")
        shoot(page, "09-certificates")
        store = MetricsStore(metrics_path(running.state_dir))
        wait_until(lambda: store.series(time.time() - 3600).get("WFC_http"), 60, what="metrics samples of WFC_http",
                   interval=1.0)  # fmt: skip
        page.goto(f"{url}/graphs?service=WFC_http")
        expect(page.locator('section.graph[data-service="WFC_http"] svg.chart')).to_have_count(3)  # the no-JS view
        # uPlot (vendored) draws three charts on one time axis: lines on the canvas, values on hover, zoom for all
        canvases = page.locator('section.graph[data-service="WFC_http"] .uplot canvas')
        expect(canvases).to_have_count(3)
        inked = canvases.first.evaluate(
            "c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;"
            " for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }"
        )
        assert inked > 500, inked  # axes and a line, not a blank canvas
        box = page.locator('section.graph[data-service="WFC_http"] .uplot .u-over').first.bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.97, box["y"] + box["height"] / 2)
        values = page.locator('section.graph[data-service="WFC_http"] .u-legend .u-series:nth-child(2) .u-value')
        expect(values).to_have_count(3)
        expect(values.nth(0)).to_have_text(re.compile(r"^\d+\.\d{2}$"))  # requests/s where the cursor is
        expect(values.nth(1)).to_have_text(re.compile(r"^\d+$"))  # the same moment on the sessions chart
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.95, box["y"] + box["height"] / 2, steps=5)
        page.mouse.up()
        expect(page.locator("#zoom-span")).to_contain_text("zoomed:")
        spans = page.locator('section.graph[data-service="WFC_http"] .uplot .u-axis').evaluate_all("axes => axes.length")
        assert spans >= 6, spans
        shoot(page, "10-graph-zoomed", full_page=False)
        page.goto(f"{url}/graphs")
        expect(page.locator("section.graph")).to_have_count(len([s for s in SERVICES]))
        shoot(page, "10-graphs", full_page=False)
        page.goto(f"{url}/log")
        expect(page.locator("pre.log")).to_be_visible()
        # HAProxy's own messages once each, with the time pacslb read them (HAProxy writes none); reloads folded
        expect(page.locator("pre.log .log-time-read").first).to_be_visible()
        log_lines = page.locator("pre.log .log-line").all_inner_texts()
        assert not [t for t in log_lines if t.startswith("· Proxy ") or t.startswith("· Server ")], log_lines[-20:]
        assert sum("proxies stopped (the old worker after a reload)" in t for t in log_lines) >= 1, log_lines[-20:]
        shoot(page, "11-log", full_page=False)

        # --- /api/docs with no network but the appliance: the explorer's assets come from the package ---
        own_host = url.split("://", 1)[1].split("/", 1)[0]
        elsewhere: list[str] = []

        def only_the_appliance(route) -> None:
            if route.request.url.split("://", 1)[1].split("/", 1)[0] == own_host:
                route.continue_()
            else:
                elsewhere.append(route.request.url)
                route.abort()

        page.route("**/*", only_the_appliance)
        page.goto(f"{url}/api/docs")
        expect(page.locator(".opblock").first).to_be_visible()
        assert page.locator(".opblock").count() > 20
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("pacslb management API")
        shoot(page, "12-api-docs", full_page=False)
        assert not elsewhere, f"/api/docs asked for other hosts: {elsewhere[:5]}"
        page.unroute("**/*")
        assert not violations, f"the pages broke the Content-Security-Policy: {violations[:5]}"
    finally:
        shoot(page, "99-last")
        context.close()
        load.join(timeout=70)
