"""The feedback agent's answers: pure functions, one table of cases."""

from __future__ import annotations

import pytest

from pacslb.health.feedback_agent import AgentInputError, Reading, answer, cpu_weight, files_reading, parse_listen, parse_output


@pytest.mark.parametrize(
    "output, reading",
    [
        ("75\n", Reading(weight=75)),
        ("  33.6 % \n", Reading(weight=34)),
        ("0", Reading(weight=0)),
        ("100%", Reading(weight=100)),
        ("\n\nDRAIN\n", Reading(word="drain")),
        ("down disk full", Reading(word="down", reason="disk full")),
        ("maint", Reading(word="maint")),
        ("ready", Reading(word="ready")),
        ("Up", Reading(word="up")),
    ],
)
def test_parse_output(output: str, reading: Reading) -> None:
    assert parse_output(output) == reading


@pytest.mark.parametrize(
    "output, message", [("", "printed nothing"), ("101", "above 100"), ("-5", "neither"), ("busy", "neither")]
)
def test_parse_output_refuses(output: str, message: str) -> None:
    with pytest.raises(AgentInputError, match=message):
        parse_output(output)


@pytest.mark.parametrize(
    "reading, line",
    [
        (Reading(weight=75), "up 75%"),
        (Reading(weight=0), "up 1%"),  # within bounds: min 1
        (Reading(weight=100, reason="cpu idle 100%"), "up 100% #cpu idle 100%"),
        (Reading(word="ready"), "up 100%"),
        (Reading(word="up"), "up 100%"),
        (Reading(word="drain"), "up 0% #drain"),
        (Reading(word="drain", reason="/run/drain exists"), "up 0% #drain: /run/drain exists"),
        (Reading(word="down", reason="disk # full\n"), "down #disk   full"),
        (Reading(word="down"), "down #down"),
        (Reading(word="maint"), "down #maintenance"),
    ],
)
def test_answer(reading: Reading, line: str) -> None:
    assert answer(reading) == line


def test_answer_never_says_haproxy_admin_words() -> None:
    """ready, drain and maint are sticky admin states in HAProxy: saying them would undo an operator's halt."""
    for reading in [Reading(word=w) for w in ("drain", "down", "maint", "ready", "up")] + [Reading(weight=50)]:
        first = answer(reading).split(" ")[0]
        assert first in ("up", "down")


def test_bounds_and_cpu() -> None:
    assert answer(Reading(weight=90), min_weight=10, max_weight=80) == "up 80%"
    assert answer(Reading(word="ready"), max_weight=60) == "up 60%"
    assert cpu_weight(3.2) == 3 and cpu_weight(0.0) == 1 and cpu_weight(99.7, max_weight=90) == 90


def test_files(tmp_path) -> None:
    drain, down = tmp_path / "drain", tmp_path / "down"
    assert files_reading(drain, down) is None
    drain.touch()
    assert files_reading(drain, down).word == "drain"
    down.touch()
    assert files_reading(drain, down).word == "down"  # down wins


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:3333") == ("127.0.0.1", 3333)
    assert parse_listen(":4000") == ("0.0.0.0", 4000)
    assert parse_listen("4000") == ("0.0.0.0", 4000)
    assert parse_listen("[::1]:3333") == ("::1", 3333)
    with pytest.raises(ValueError, match="ADDRESS:PORT"):
        parse_listen("host:99999")
