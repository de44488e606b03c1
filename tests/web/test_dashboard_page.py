"""The dashboard page in-process: VIP groups with their backend-only services nested, drain and halt ask first,
and the last serving server's buttons say what happens to the service (computed server-side)."""

from __future__ import annotations

import html as htmllib
import re


def group_of(page: str, name: str) -> str:
    start = page.index(f'data-group="{name}"')
    end = page.find("</details>", start)
    return page[start:end]


def confirms(page: str, service: str, server: str) -> dict[str, str]:
    """The data-confirm of each button form of a real server: state -> question."""
    found = {}
    pattern = rf'<form method="post" action="/services/{service}/real-servers/{server}/state" class="inline"( data-confirm="([^"]*)")?>\s*' \
              r'<input type="hidden" name="csrf_token" value="[^"]*">\s*<input type="hidden" name="state" value="(\w+)">'  # fmt: skip
    for match in re.finditer(pattern, page):
        found[match[3]] = htmllib.unescape(match[2] or "")
    return found


def test_a_vip_group_nests_the_backend_only_service_its_default_reaches(web):
    page = web("operator").get("/").text
    group = group_of(page, "web")
    assert 'id="vs-web"' in group and 'class="vs nested" id="vs-only"' in group
    assert 'default</span> <span class="muted">anything no rule takes</span>' in group
    assert "via web" in group  # the nested service says who reaches it
    assert re.search(r"data-group=\"web\" data-states=\"up drain halt unknown\"", page), re.findall(
        r"data-states=\"[^\"]*\"", page
    )
    assert 'id="dash-filter" role="search" hidden' in page  # shown by app.js only: without JS the full list


def test_drain_and_halt_ask_first_and_online_does_not(web):
    page = web("operator").get("/").text
    questions = confirms(page, "web", "rs1")
    assert questions["drain"].startswith("Drain rs1 of web? It takes no new sessions; the open ones continue.")
    assert questions["halt"].startswith("Halt rs1 of web?") and "Warning" not in questions["halt"]
    assert questions["online"] == ""


def test_the_last_serving_server_says_its_service_gets_503(web, web_app):
    page = web("operator").get("/").text
    only = web_app.controller.status().virtual_services[1]
    serving = [rs.name for rs in only.real_servers if rs.state.value in ("UP", "no-check")]
    assert serving == ["a"], only  # the recorded `show stat`: 'only' has one server, up
    questions = confirms(page, "only", "a")
    expected = "service only will have no server: new requests that web sends here get 503 (Service Unavailable)."
    assert questions["halt"].endswith("Warning: " + expected) and questions["drain"].endswith(expected)
    assert 'class="btn-halt last-server"' in page


def test_a_viewer_gets_the_groups_without_buttons(web):
    page = web("viewer").get("/fragments/dashboard").text
    assert 'data-group="web"' in page and "data-confirm" not in page and "btn-drain" not in page
