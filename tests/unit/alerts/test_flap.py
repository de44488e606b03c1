"""The flap policy: the first change at once, one summary per interval after it, quiet things close their interval."""

from __future__ import annotations

from pacslb.alerts import events
from pacslb.alerts.flap import FlapPolicy


def down(at: float, server: str = "rs1"):
    return events.real_server_down("WFC_443", server, "Layer4 connection problem: Connection refused", at)


def up(at: float, server: str = "rs1"):
    return events.real_server_up("WFC_443", server, "passed", at)


def test_the_first_change_goes_out_at_once_then_the_rest_in_one_summary_per_interval():
    policy = FlapPolicy(60)
    assert policy.offer(down(0), 0) == [down(0)]
    for t in range(1, 20):  # flapping: 19 more changes within the interval, none sent
        assert policy.offer(up(t) if t % 2 else down(t), t) == []
    assert policy.held == 19 and policy.next_due() == 60
    assert policy.tick(59.9) == []
    [summary] = policy.tick(60)
    assert summary.event == "real-server-up" and summary.subject == "WFC_443/rs1"
    assert summary.details["flapping"] is True and summary.details["changes"] == 19
    assert summary.message.startswith("flapping: WFC_443/rs1 changed state 19 more times in 1m; now: real server rs1")
    assert summary.severity == "critical"  # the interval began with a down: a summary is as severe as what it hides
    # the summary opened the next interval: a change within it is held again, told at its end
    assert policy.offer(down(70), 70) == [] and [a.details["changes"] for a in policy.tick(120)] == [1]
    # an interval that ends with nothing held closes: the next change goes out at once
    assert policy.tick(180) == [] and policy.next_due() is None
    assert policy.offer(up(200), 200) == [up(200)]


def test_things_are_grouped_apart_and_alerts_without_a_key_pass():
    policy = FlapPolicy(60)
    assert policy.offer(down(0, "rs1"), 0) == [down(0, "rs1")]
    assert policy.offer(down(1, "rs2"), 1) == [down(1, "rs2")]  # another server: its own interval
    applied = events.config_applied("apply", "pacslb.yaml", 7, "admin", "cli", "applied", 2)
    assert policy.offer(applied, 2) == [applied]
    assert policy.offer(up(3, "rs1"), 3) == []


def test_a_due_summary_goes_out_before_the_alert_that_finds_it():
    policy = FlapPolicy(10)
    policy.offer(down(0), 0)
    policy.offer(up(1), 1)
    out = policy.offer(down(1, "rs9"), 15)
    assert [a.subject for a in out] == ["WFC_443/rs1", "WFC_443/rs9"] and out[0].details["flapping"]
