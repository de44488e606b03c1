"""The model's fallback (server or maintenance page), feedback agent and settings.health: what is refused and why."""

from __future__ import annotations

import pytest

from pacslb.model import load_text

BASE = """
version: 1
virtual_services:
  - name: svc
    mode: {mode}
    listen: [{{address: 192.0.2.1, port: 80}}]
    health_check: {check}
    real_servers: [{{name: rs1, address: 192.0.2.11, port: 80}}]
{extra}
"""


def problems(mode: str = "layer7-http", check: str = "{type: connect}", extra: str = "") -> list[str]:
    loaded = load_text(BASE.format(mode=mode, check=check, extra=extra))
    return [str(p) for p in loaded.problems]


def test_fallback_server_still_reads_as_before() -> None:
    assert problems(extra="    fallback: {address: 192.0.2.9, port: 8080}") == []
    assert problems(extra="    fallback: {address: 192.0.2.9, port: 8443, encrypted: true}\n    server_tls: {verify: none}") == []


def test_maintenance_page() -> None:
    assert problems(extra="    fallback: {maintenance_page: true}") == []
    (p,) = problems(mode="layer7-tcp", extra="    fallback: {maintenance_page: true}")
    assert p.startswith("virtual_services[svc]") and "a layer7-tcp service can only have a fallback server" in p


@pytest.mark.parametrize(
    "fallback, message",
    [
        ("{maintenance_page: true, address: 192.0.2.9, port: 80}", "either a server"),
        ("{page: x.html, address: 192.0.2.9, port: 80}", "set maintenance_page: true"),
        ("{address: 192.0.2.9}", "needs address and port"),
        ("{}", "needs address and port"),
    ],
)
def test_fallback_is_a_server_or_the_page(fallback: str, message: str) -> None:
    (p,) = problems(extra=f"    fallback: {fallback}")
    assert "fallback" in p and message in p


def test_maintenance_page_on_a_backend_only_service_reached_from_tcp() -> None:
    loaded = load_text("""
version: 1
virtual_services:
  - name: front
    mode: layer7-tcp
    listen: [{address: 192.0.2.1, port: 104}]
    default_service: back
  - name: back
    mode: backend-only
    real_servers: [{name: rs1, address: 192.0.2.11, port: 104}]
    fallback: {maintenance_page: true}
""")
    assert [str(p) for p in loaded.problems] == [
        "virtual_services[back].fallback.maintenance_page: is reached from a layer7-tcp service, where a maintenance "
        "page (HTTP) cannot be served: use a fallback server"
    ]


def test_feedback_agent() -> None:
    assert problems(extra="    feedback_agent: {port: 3333, interval: 2s}") == []
    assert problems(check="{type: http}", extra="    feedback_agent: {}") == []
    (p,) = problems(check="{type: dicom-echo}", extra="    feedback_agent: {}")
    assert "feedback_agent cannot be combined with a dicom-echo health check" in p
    (p,) = problems(extra="    feedback_agent: {interval: 50ms}")
    assert "feedback_agent.interval" in p and "at least 100ms" in p


def test_agent_port_setting() -> None:
    assert load_text("version: 1\n").config.settings.health.agent_port == 334  # privileged: docs/security.md
    loaded = load_text("version: 1\nsettings: {health: {agent_port: 0}}\n")
    assert [p.path for p in loaded.problems] == ["settings.health.agent_port"]


def test_maintenance_page_file_must_exist_and_fit(tmp_path) -> None:
    from pacslb.model.checks import MAX_PAGE_BYTES, check_files

    loaded = load_text(
        BASE.format(mode="layer7-http", check="{type: connect}", extra="    fallback: {maintenance_page: true, page: page.html}")
    )
    assert loaded.ok
    (p,) = check_files(loaded.config, tmp_path)
    assert p.path == "virtual_services[svc].fallback.page" and "does not exist" in p.message
    (tmp_path / "page.html").write_text("x" * (MAX_PAGE_BYTES + 1))
    (p,) = check_files(loaded.config, tmp_path)
    assert "make it smaller" in p.message
    (tmp_path / "page.html").write_text("<html>maintenance</html>")
    assert check_files(loaded.config, tmp_path) == []
