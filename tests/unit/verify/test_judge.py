"""Judging a verify answer (pure): the counters that moved, the status, and the route's expectation."""

from pacslb.verify.report import report_data, report_text
from pacslb.verify.routes import Route
from pacslb.verify.runner import Report, RouteResult, judge, moved

RULE = Route("gw", "127.0.0.1", 8000, "img", "http", expect_service="images")
REDIRECT = Route("gw", "127.0.0.1", 8000, "old", "http", expect_status=301)


def test_moved_lists_the_servers_whose_session_counter_grew():
    before = {("images", "a"): 3, ("images", "b"): 5}
    assert moved(before, {("images", "a"): 3, ("images", "b"): 6, ("viewer", "v"): 1}) == [("images", "b"), ("viewer", "v")]
    assert moved(before, before) == []


def test_judge_a_rule_route():
    assert judge(RULE, "200", [("images", "a")], "") == ("ok", "")
    assert judge(RULE, "404", [("images", "a")], "") == ("ok", "")  # the server answered: the route holds
    assert judge(RULE, "200", [("viewer", "v")], "") == ("failed", "expected images, but viewer took it")
    assert judge(RULE, "503", [], "")[0] == "failed"
    assert judge(RULE, "503", [("images", "a")], "") == ("failed", "a was tried but the answer was 503")
    assert judge(RULE, "no AMQP", [("images", "a")], "connection refused") == ("failed", "connection refused")


def test_judge_a_redirect_route():
    assert judge(REDIRECT, "301", [], "") == ("ok", "")
    assert judge(REDIRECT, "302", [], "") == ("failed", "expected status 301, got 302")
    assert judge(REDIRECT, "301", [("images", "a")], "")[0] == "failed"


def test_report_fails_on_a_failed_or_shadowed_route_but_not_on_an_untested_one():
    ok = RouteResult(RULE, "ok", "images", "a", "200", 4.2)
    untested = RouteResult(REDIRECT, "not tested", problem="needs a client in 10.0.0.0/8")
    assert Report([ok, untested], {}).ok
    shadowed = RouteResult(REDIRECT, "shadowed", problem="shadowed: rule img (earlier) takes every request it matches")
    report = Report([ok, shadowed], {"gw": {"old": "img"}})
    assert not report.ok
    data = report_data(report)
    assert data["counts"] == {"ok": 1, "shadowed": 1} and data["routes"][0]["real_server"] == "a"
    text = report_text(report)
    assert "images/a 200 4 ms" in text and "SHADOWED" in text and text.endswith("VERIFY FAILED")
