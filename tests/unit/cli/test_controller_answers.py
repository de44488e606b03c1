"""The CLI tells a controller that answered with an error apart from one that does not answer (issue 13: a
500 from a MemoryError was reported as "no controller answers ... start the appliance")."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from pacslb.cli import app
from pacslb.controller.client import ControllerClient, ControllerUnavailable

runner = CliRunner()
CONFIG = """
version: 1
virtual_services:
  - name: web
    mode: layer7-http
    listen: [{address: 192.0.2.1, port: 80}]
    real_servers: [{name: rs1, address: 192.0.2.11, port: 80}]
"""


def _answering(status: int, body: dict | str):
    def request(self, method, path, body_=None, params=None):
        made = httpx.Request(method, f"http://pacslb/api/v1{path}")
        if isinstance(body, str):
            return httpx.Response(status, text=body, request=made)
        return httpx.Response(status, json=body, request=made)

    return request


@pytest.mark.parametrize(
    "status, body, code, says",
    [
        (500, "Internal Server Error", 1, "the controller answered 500 to POST /api/v1/apply: Internal Server Error"),
        (413, {"outcome": "error", "message": "the request body is larger than 32768 KiB"}, 2,
         "the controller answered 413 to POST /api/v1/apply: the request body is larger than 32768 KiB"),
        (422, {"detail": [{"loc": ["body", "yaml"], "msg": "too long"}]}, 2, "the controller answered 422 to POST /api/v1/apply"),
    ],
    ids=["500", "413", "422 of the framework"],
)  # fmt: skip
def test_an_error_answer_is_reported_as_the_controllers_not_as_no_controller(tmp_path: Path, monkeypatch, status, body, code,
                                                                             says):  # fmt: skip
    config = tmp_path / "pacslb.yaml"
    config.write_text(CONFIG)
    monkeypatch.setattr(ControllerClient, "_request", _answering(status, body))
    result = runner.invoke(app, ["apply", "-c", str(config), "--state-dir", str(tmp_path / "state")])
    assert result.exit_code == code, result.output
    assert says in result.stderr, result.stderr
    assert "no controller answers" not in result.stderr


def test_no_controller_is_still_said_when_none_answers(tmp_path: Path):
    config = tmp_path / "pacslb.yaml"
    config.write_text(CONFIG)
    result = runner.invoke(app, ["apply", "-c", str(config), "--state-dir", str(tmp_path / "state")])
    assert result.exit_code == 1
    assert "no controller answers" in result.stderr


def test_the_error_is_still_a_controller_unavailable_for_older_callers():
    from pacslb.controller.client import ControllerError

    assert issubclass(ControllerError, ControllerUnavailable)
