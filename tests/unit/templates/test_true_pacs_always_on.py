"""`--always-on-default`: VIP 2, 3 and 4 take unmatched requests on real servers of their own, unchecked."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from pacslb.cli import app
from pacslb.model import load_file
from pacslb.templates import TruePacsParams, render_true_pacs
from pacslb.verify.routes import DEFAULT_ROUTE, plan_routes

PARENTS = {"WFC_443": (443, True), "WFC_http": (80, False), "WFC_10443": (10443, True)}


def _load(tmp_path: Path, *args: str):
    config = tmp_path / "pacslb.yaml"
    result = CliRunner().invoke(app, ["init", "-t", "true-pacs", "-o", str(config), *args])
    assert result.exit_code == 0, result.output
    loaded = load_file(config)
    assert loaded.ok, [str(p) for p in loaded.problems]
    return loaded.config


def test_parents_get_their_own_unchecked_servers_instead_of_a_default_service(tmp_path: Path):
    config = _load(tmp_path, "--always-on-default")
    for name, (port, encrypted) in PARENTS.items():
        vs = config.service(name)
        assert vs.default_service is None
        assert vs.health_check.type == "none"
        assert [(rs.address, rs.port, rs.encrypted) for rs in vs.real_servers] == [
            ("192.0.2.21", port, encrypted),
            ("192.0.2.22", port, encrypted),
        ]
        assert len(vs.rules) in (13, 3)  # the rules are the same as without the option


def test_without_the_option_the_parents_keep_their_default_service(tmp_path: Path):
    config = _load(tmp_path)
    for name in PARENTS:
        vs = config.service(name)
        assert vs.real_servers == [] and vs.default_service is not None


def test_verify_sends_the_unmatched_request_to_the_parents_own_servers(tmp_path: Path):
    config = _load(tmp_path, "--always-on-default")
    defaults = {r.virtual_service: r.expect_service for r in plan_routes(config) if r.rule == DEFAULT_ROUTE}
    for name in PARENTS:
        assert defaults[name] == name


def test_the_demo_can_give_the_parents_servers_too():
    text = render_true_pacs(TruePacsParams(always_on_default=True, real_servers={"WFC_443": [("127.0.0.5", 9443)]}))
    assert "- {name: wfc1, address: 127.0.0.5, port: 9443, encrypted: true}" in text
    assert TruePacsParams(real_servers={"WFC_443": [("127.0.0.5", 9443)]}).problems() == [
        "real_servers: 'WFC_443' is not a True PACS service with real servers"
    ]
