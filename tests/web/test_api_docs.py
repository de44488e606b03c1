"""/api/docs from the package (issue 16): the explorer's page and assets only to logged-in users, no CDN anywhere,
a strict CSP; and every asset the page names is in the package (so the wheel and the .deb carry it)."""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest

from pacslb.api.apidocs import ASSETS, ASSETS_DIR, ASSETS_URL
from pacslb.web.context import STATIC_DIR

pytest.importorskip("httpx")

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def clients(web):
    return web(None), web("viewer")


def test_the_page_and_its_assets_need_a_login(clients):
    anonymous, viewer = clients
    assert anonymous.get("/api/docs").status_code == 401
    for name in ASSETS:
        assert anonymous.get(f"{ASSETS_URL}/{name}").status_code == 401, name
        answer = viewer.get(f"{ASSETS_URL}/{name}")
        assert answer.status_code == 200 and answer.content == (ASSETS_DIR / name).read_bytes(), name
    assert viewer.get(f"{ASSETS_URL}/LICENSE").status_code == 404  # only the files the page uses
    assert viewer.get(f"{ASSETS_URL}/..%2Fapp.py").status_code == 404


def test_no_cdn_url_in_what_the_page_loads(clients):
    _, viewer = clients
    page = viewer.get("/api/docs")
    assert page.status_code == 200
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert urls and all(u.startswith(ASSETS_URL + "/") for u in urls), urls
    assert "cdn" not in page.text.lower() and "http" not in page.text
    assert "<script>" not in page.text  # no inline script: the CSP stays strict
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "style-src 'self';" in csp and "https:" not in csp
    init = viewer.get(f"{ASSETS_URL}/init.js").text
    assert "/api/openapi.json" in init and "validatorUrl: null" in init


def test_the_package_data_carries_every_vendored_file_and_its_licence():
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["pacslb"]
    package = REPO / "src" / "pacslb"
    vendored = [*ASSETS_DIR.iterdir(), *(STATIC_DIR / "vendor").iterdir(), *STATIC_DIR.glob("*.js")]
    for path in vendored:
        relative = path.relative_to(package).as_posix()
        assert any(fnmatch(relative, g) and "/" not in relative[len(g.rsplit("/", 1)[0]) + 1 :] for g in globs), relative
    for licence in ("LICENSE", "NOTICE"):
        assert (ASSETS_DIR / licence).is_file()
    assert (STATIC_DIR / "vendor" / "uPlot.LICENSE").read_text().startswith("The MIT License")
    assert "uPlot 1.6.32" in (STATIC_DIR / "vendor" / "THIRD-PARTY.md").read_text()
    assert "swagger-ui-dist 5.36.0" in (ASSETS_DIR / "THIRD-PARTY.md").read_text()
