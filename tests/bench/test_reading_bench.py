"""bench/reading.py: its metrics, determinism, and the issue's goals on a fast run (3 simulated days, two seeds).

The goals asserted: STAT p95 at least 40% below FIFO with cherry-picking, no exam past its class's waiting bound,
Jain's index >= 0.95, every exam read, and no metric of the table worse than FIFO's, except the four the full run
leaves worse (routine median, p95 and maximum, and so the longest wait: the price of reading STATs first, see
docs/reading-balance.md), which are held to at most 1.5 times FIFO's so that a regression still fails.
"""

from __future__ import annotations

import math
from collections import Counter

import pytest
from bench_support import load_bench

reading = load_bench("reading.py")


def test_jain_and_shannon():
    assert reading.jain([2.0, 2.0, 2.0]) == pytest.approx(1.0)
    assert reading.jain([1.0, 0.0]) == pytest.approx(0.5)
    assert reading.shannon(Counter({"CT": 1})) == 0
    assert reading.shannon(Counter({"CT": 5, "MR": 5})) == pytest.approx(math.log(2))


def test_arrivals_are_seeded_and_follow_the_profile():
    a, b = reading.arrivals(1, 7), reading.arrivals(1, 7)
    assert [(x.exam.accession, x.minutes) for x in a] == [(x.exam.accession, x.minutes) for x in b]
    assert reading.arrivals(1, 8)[0].minutes != a[0].minutes
    night = sum(1 for x in a if x.exam.arrived % reading.DAY < 6 * reading.HOUR)
    day = sum(1 for x in a if 9 * reading.HOUR <= x.exam.arrived % reading.DAY < 15 * reading.HOUR)
    assert day > 3 * night
    assert all(x.exam.credential == "MQSA" for x in a if x.exam.modality == "MG")


# The fast run: 3 simulated days x 2 seeds, aggregated as the full run is (means over seeds, maxima the largest).
FAST_DAYS, FAST_SEEDS = 3, [1, 2]
# Metrics the full run (7 days x 5 seeds) leaves worse than FIFO with cherry-picking, and why (docs/reading-balance.md,
# "The unmet goal"): reading STATs first moves their waiting onto routine exams. They are held to a bound here, so
# that a regression still fails.
TRADE_OFF = {"routine_median": 1.5, "routine_p95": 1.5, "routine_max": 1.5, "longest_wait": 1.5}
# Every other metric of the table must be no worse than FIFO's; the full run meets each outright, and 5% is the
# allowance for the fast run's seed noise (MR routine median ties FIFO's to within a minute).
NOISE = 1.05


@pytest.fixture(scope="module")
def table():
    original = reading.POLICIES
    reading.POLICIES = ("fifo", "pacslb")
    try:
        return reading.compare(FAST_DAYS, FAST_SEEDS)
    finally:
        reading.POLICIES = original


def test_pacslb_meets_the_goals_against_fifo_with_cherry_picking(table):
    fifo, ours = table["fifo"], table["pacslb"]
    assert ours["unread"] == 0 and fifo["unread"] == 0
    assert ours["STAT_p95"] <= 0.6 * fifo["STAT_p95"]
    assert ours["over_bound"] == 0
    assert ours["jain"] >= 0.95


def test_no_metric_worse_than_fifo_but_the_stated_trade_off(table):
    fifo, ours = table["fifo"], table["pacslb"]
    assert set(TRADE_OFF) <= set(reading.LOWER_IS_BETTER)
    for key in reading.LOWER_IS_BETTER:
        limit = TRADE_OFF.get(key, NOISE)
        assert ours[key] <= limit * fifo[key], (key, ours[key], fifo[key])
    for key in reading.HIGHER_IS_BETTER:
        assert ours[key] >= fifo[key] / NOISE, (key, ours[key], fifo[key])
    # every column of the results table is compared
    compared = set(reading.LOWER_IS_BETTER) | set(reading.HIGHER_IS_BETTER)
    assert {key for key, _, _ in reading.COLUMNS} == compared


def _exam(acc: str, priority: str, arrived_min: float, minutes: float):
    exam = reading.Exam(acc, f"P{acc}", "CT", priority, arrived_min * reading.MIN, 1.0)
    return reading.SimExam(exam, minutes)


def test_least_longest_wait_is_the_optimum_of_small_cases():
    """One reader for 10 hours. Five routine exams of 60 min at 0: the fifth is opened at 240 min at best. A STAT of
    10 min at 200 min does not change that without the class bounds (it can wait until 300, 100 min), but opened
    within its 60-min bound it pushes the last routine exam to 250."""
    shift = [reading.Shift("a", 0.0, 10 * reading.HOUR, 6.0)]
    exams = [_exam(f"r{i}", "routine", 0, 60) for i in range(5)] + [_exam("s", "STAT", 200, 10)]
    assert reading.least_longest_wait(exams, shift, class_bounds=False) == pytest.approx(240, abs=0.5)
    assert reading.least_longest_wait(exams, shift, class_bounds=True) == pytest.approx(250, abs=0.5)
    # reading 30 min past the end of the shift changes nothing here (the work ends inside it); a shift too short
    # for the work makes every wait impossible
    assert reading.least_longest_wait(exams, shift, overtime=30 * reading.MIN) == pytest.approx(250, abs=0.5)
    assert reading.least_longest_wait(exams, [reading.Shift("a", 0.0, reading.HOUR, 6.0)]) == math.inf


def test_capacity_steps_count_readers_working_and_overtime_stops_at_the_next_stretch():
    shift = reading.Shift("a", 0.0, 8 * reading.HOUR, 6.0, ((4 * reading.HOUR, 4.5 * reading.HOUR),))
    assert reading.capacity_steps([shift]) == [(0.0, 1), (4 * reading.HOUR, -1), (4.5 * reading.HOUR, 1), (8 * reading.HOUR, -1)]
    long = reading.capacity_steps([shift], overtime=reading.HOUR)  # longer than the break: it ends where work resumes
    assert long == [(0.0, 1), (4.5 * reading.HOUR, -1), (4.5 * reading.HOUR, 1), (9 * reading.HOUR, -1)]


def test_overtime_is_reading_outside_the_declared_stretches():
    shift = reading.Shift("a", 0.0, reading.HOUR, 6.0)
    run = reading.Run()
    exam = _exam("x", "routine", 0, 10).exam
    run.records["x"] = reading.Record(exam, "a", started=55 * reading.MIN, signed=65 * reading.MIN)
    assert reading.overtime_per_stretch(run, [shift]) == pytest.approx(5.0)


def _longest_overtime(run, shifts) -> float:
    """Seconds the longest case read past the end of the stretch (break or shift end) in which it was opened."""
    longest = 0.0
    for r in run.records.values():
        for shift in shifts:
            if shift.reader != r.reader:
                continue
            for begin, finish in reading.working_stretches(shift):
                if begin <= r.started < finish:
                    longest = max(longest, r.signed - finish)
    return longest


@pytest.mark.parametrize("policy", ["fifo", "pacslb"])
def test_the_bound_is_below_what_each_policy_measures(policy):
    """Soundness on a real run: with every stretch lengthened by the longest overtime the run had, the run's own
    schedule is one of the relaxation's, so the bound cannot exceed its longest wait (with the class bounds only for a
    policy that keeps them: pacslb)."""
    days, seed = 2, 1
    shifts = reading.shifts(days)
    run = reading.simulate(policy, days, seed)
    measured = reading.metrics(run)
    assert measured["unread"] == 0
    bound = reading.least_longest_wait(reading.arrivals(days, seed), shifts, policy == "pacslb", _longest_overtime(run, shifts))
    assert 0 < bound <= measured["longest_wait"] + 0.5  # the bisection stops within half a minute
