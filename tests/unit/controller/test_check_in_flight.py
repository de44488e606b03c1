"""A health check in flight: HAProxy prefixes the last result with '* ' and shows check_code 0 until the answer."""

from __future__ import annotations

import pytest

from pacslb.controller.status import CheckOutcome, CheckResult, check_result
from pacslb.engines.haproxy.runtime import ProxyKind, StatRow


def row(check_status: str, code: int | None, desc: str | None = None, info: str | None = None) -> StatRow:
    return StatRow(proxy="web", name="rs1", kind=ProxyKind.SERVER, status="UP", check_status=check_status,
                   check_code=code, check_description=desc, check_info=info)  # fmt: skip


@pytest.mark.parametrize(
    ("check_status", "code", "summary"),
    [
        ("L7OK", 200, "passed (status 200)"),
        ("* L7OK", 200, "passed (status 200) · checking"),
        ("* L7OK", 0, "passed · checking"),  # was 'passed (status 0)', which reads like a failure
        ("L4OK", 0, "passed"),
        ("* L4OK", None, "passed · checking"),
    ],
)
def test_a_passed_check_never_shows_status_0(check_status, code, summary):
    found = check_result(row(check_status, code))
    assert found.outcome is CheckOutcome.PASSED
    assert found.summary() == summary
    assert found.in_progress is check_status.startswith("*")
    assert found.code != 0


def test_a_failed_check_in_flight_keeps_its_reason():
    found = check_result(row("* L4CON", 0, "Layer4 connection problem", "Connection refused"))
    assert found.outcome is CheckOutcome.FAILED and found.code is None
    assert found.summary() == "failed: Layer4 connection problem: Connection refused · checking"


def test_pending_and_unchecked_are_unchanged():
    assert check_result(row("* INI", 0)).summary() == "pending"
    assert CheckResult().summary() == "-"
