"""balance/scheduler.py and balance/capacity.py: the rules one by one, then properties over random worklists."""

from __future__ import annotations

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from pacslb.balance.capacity import earned, is_working, working_seconds
from pacslb.balance.model import Exam, PriorityClass, Reader, Shift
from pacslb.balance.scheduler import BalanceError, Policy, Worklist, qualified

H = 3600.0


def exam(acc, priority="routine", arrived=0.0, effort=1.0, patient=None, **kw) -> Exam:
    return Exam(acc, patient or f"P{acc}", kw.pop("modality", "CT"), priority, arrived, effort, **kw)


def day_shift(name, start=0.0, end=8 * H, capacity=6.0, breaks=()) -> Shift:
    return Shift(name, start, end, capacity, tuple(breaks))


# -- capacity ------------------------------------------------------------------------------------------------


def test_working_seconds_leave_out_breaks_and_stop_at_the_end():
    shift = day_shift("a", 0, 8 * H, breaks=[(4 * H, 4.5 * H)])
    assert working_seconds(shift, 2 * H) == 2 * H
    assert working_seconds(shift, 4.25 * H) == 4 * H
    assert working_seconds(shift, 10 * H) == 7.5 * H
    assert working_seconds(shift, -1) == 0


def test_earned_capacity_is_declared_rate_times_hours_worked():
    shifts = [day_shift("a", 0, 2 * H, capacity=6.0), day_shift("a", 10 * H, 12 * H, capacity=3.0)]
    assert earned(shifts, 11 * H) == pytest.approx(6.0 * 2 + 3.0 * 1)


def test_is_working_is_false_on_break_and_after_the_end():
    shift = day_shift("a", 0, 8 * H, breaks=[(4 * H, 4.5 * H)])
    assert is_working(shift, 1)
    assert not is_working(shift, 4.1 * H)
    assert not is_working(shift, 8 * H)


# -- priority and escalation ---------------------------------------------------------------------------------


def test_stat_goes_before_older_routine():
    wl = Worklist([Reader("a", max_queued=1)], [day_shift("a")])
    wl.add(exam("r1", "routine", arrived=0))
    wl.add(exam("s1", "STAT", arrived=100))
    [decision] = wl.assign(200)
    assert decision.accession == "s1"
    assert decision.reason.startswith("STAT")


def test_expedited_and_routine_compete_by_wait_relative_to_their_bound():
    wl = Worklist([Reader("a", max_queued=3)], [day_shift("a")])  # default bounds: expedited 4 h, routine 12 h
    wl.add(exam("r", "routine", arrived=0))  # at 100 min: 100 of 720 min, 14%
    wl.add(exam("e", "expedited", arrived=80 * 60))  # at 100 min: 20 of 240 min, 8%
    wl.add(exam("s", "STAT", arrived=99 * 60))  # STAT stays first whatever the others waited
    decisions = wl.assign(100 * 60)
    assert [d.accession for d in decisions] == ["s", "r", "e"]
    assert decisions[1].reason.startswith("routine (waited 100 min, 14% of its 720-min bound)")
    wl2 = Worklist([Reader("a", max_queued=3)], [day_shift("a")])
    wl2.add(exam("r", "routine", arrived=0))  # at 100 min: 14%
    wl2.add(exam("e", "expedited", arrived=50 * 60))  # at 100 min: 50 of 240 min, 21%
    assert [d.accession for d in wl2.assign(100 * 60)] == ["e", "r"]


def test_routine_near_its_bound_is_escalated_above_stat():
    policy = Policy(classes=(PriorityClass("STAT", 0, 3600), PriorityClass("routine", 2, 4 * 3600)), escalation_lead=600)
    wl = Worklist([Reader("a", max_queued=1)], [day_shift("a")], policy)
    wl.add(exam("old", "routine", arrived=0))
    wl.add(exam("s1", "STAT", arrived=4 * H - 700))
    [decision] = wl.assign(4 * H - 600)
    assert decision.accession == "old"
    assert "escalated (waited 230 of at most 240 min)" in decision.reason


def test_unknown_priority_and_duplicate_accession_are_refused():
    wl = Worklist([Reader("a")], [day_shift("a")])
    with pytest.raises(BalanceError, match="unknown priority 'urgent'"):
        wl.add(exam("x", "urgent"))
    wl.add(exam("x"))
    with pytest.raises(BalanceError, match="already on the worklist"):
        wl.add(exam("x"))


# -- hard constraints ----------------------------------------------------------------------------------------


def test_qualified_names_the_failing_constraint():
    reader = Reader("a", credentials=frozenset({"MQSA"}), subspecialties=frozenset({"neuro"}), sites=frozenset({"north"}))
    assert qualified(reader, exam("1", credential="MQSA", subspecialty="neuro", site="north")) == ""
    assert qualified(reader, exam("1", credential="nuclear")) == "no credential nuclear"
    assert qualified(reader, exam("1", subspecialty="msk")) == "not subspecialty msk"
    assert qualified(reader, exam("1", site="south")) == "not licensed for site south"
    assert qualified(Reader("any"), exam("1", site="south")) == ""


def test_only_a_qualified_working_reader_gets_the_exam():
    readers = [Reader("gen"), Reader("mammo", credentials=frozenset({"MQSA"})), Reader("off", credentials=frozenset({"MQSA"}))]
    shifts = [day_shift("gen"), day_shift("mammo"), day_shift("off", 10 * H, 12 * H)]
    wl = Worklist(readers, shifts)
    wl.add(exam("m1", credential="MQSA", modality="MG"))
    [decision] = wl.assign(H)
    assert decision.reader == "mammo"
    assert "1 of 2 working readers qualified (credential MQSA)" in decision.reason


def test_nobody_qualified_leaves_the_exam_waiting():
    wl = Worklist([Reader("gen")], [day_shift("gen")])
    wl.add(exam("m1", credential="MQSA"))
    assert wl.assign(H) == []
    assert "m1" in wl.waiting


def test_same_patient_goes_to_the_same_reader_even_past_the_cap():
    wl = Worklist([Reader("a", max_queued=1), Reader("b", max_queued=1)], [day_shift("a"), day_shift("b")])
    wl.add(exam("ct", patient="P1", effort=2.0))
    first = wl.assign(H)
    wl.add(exam("xr", patient="P1", effort=0.2))
    [second] = wl.assign(H + 1)
    assert second.reader == first[0].reader
    assert "same patient as ct" in second.reason


def test_grouping_yields_to_credentials():
    wl = Worklist([Reader("a"), Reader("b", credentials=frozenset({"MQSA"}))], [day_shift("a"), day_shift("b")])
    wl.add(exam("ct", patient="P1"))
    wl.ledgers["b"].assigned_effort = 100  # b far ahead: the CT goes to a
    assert wl.assign(H)[0].reader == "a"
    wl.add(exam("mg", patient="P1", credential="MQSA"))
    assert wl.assign(H)[0].reader == "b"


# -- balance and caps ----------------------------------------------------------------------------------------


def test_the_reader_furthest_behind_declared_capacity_gets_the_exam():
    # b declares twice a's rate: after one hour with 6 units each, b is 6 units behind and a is even
    wl = Worklist([Reader("a"), Reader("b")], [day_shift("a", capacity=6), day_shift("b", capacity=12)])
    wl.ledgers["a"].assigned_effort = 6
    wl.ledgers["b"].assigned_effort = 6
    wl.add(exam("1"))
    [decision] = wl.assign(H)
    assert decision.reader == "b"
    assert "b is furthest behind declared capacity (-0.50 h), next a (+0.00 h)" in decision.reason


def test_deficit_is_carried_across_a_break():
    # a worked 2 h at 6/h and was given nothing, then went on break; b started later. After the break a is still owed.
    shifts = [day_shift("a", 0, 8 * H, breaks=[(2 * H, 3 * H)]), day_shift("b", 2 * H, 10 * H)]
    wl = Worklist([Reader("a"), Reader("b")], shifts)
    wl.add(exam("on-break", arrived=2.5 * H))
    assert wl.assign(2.5 * H)[0].reader == "b"  # a is on break
    wl.add(exam("after", arrived=3 * H))
    decision = wl.assign(3 * H)[0]
    assert decision.reader == "a"
    assert wl.lag_hours("a", shifts[0], 3 * H) == pytest.approx((1 - 12) / 6)


def test_queue_cap_and_effort_cap_hold():
    wl = Worklist([Reader("a", max_queued=2, max_outstanding_effort=2.5)], [day_shift("a")])
    for i in range(5):
        wl.add(exam(str(i), effort=1.0, arrived=i))
    assert [d.accession for d in wl.assign(H)] == ["0", "1"]  # the list is full
    wl.open_case("a", H)  # opens 0: one place free on the list, but 2 units open and a third passes 2.5
    assert wl.assign(H) == []
    wl.sign("0")
    assert [d.accession for d in wl.assign(H)] == ["2"]
    assert len(wl.ledgers["a"].queued()) == 2


def test_an_exam_larger_than_the_effort_cap_is_given_to_an_empty_list():
    wl = Worklist([Reader("a", max_outstanding_effort=1.0)], [day_shift("a")])
    wl.add(exam("big", effort=5.0))
    assert wl.assign(H)[0].accession == "big"


def test_unopened_exams_return_to_the_pool_when_the_reader_stops():
    wl = Worklist([Reader("a"), Reader("b")], [day_shift("a", 0, 2 * H), day_shift("b", 0, 8 * H)])
    wl.ledgers["b"].assigned_effort = 50
    wl.add(exam("1"))
    wl.add(exam("2"))
    assert {d.reader for d in wl.assign(H)} == {"a"}
    assert wl.open_case("a", H).exam.accession == "1"
    moved = wl.assign(3 * H)
    assert [(d.accession, d.reader) for d in moved] == [("2", "b")]
    assert wl.holder["1"] == "a"  # opened exams stay with their reader until signed
    assert wl.ledgers["a"].assigned_effort == 1.0


def test_open_case_gives_the_list_in_reading_order_and_sign_closes():
    wl = Worklist([Reader("a", max_queued=3)], [day_shift("a")])
    wl.add(exam("r", "routine", arrived=0))
    wl.add(exam("e", "expedited", arrived=10))
    assert wl.open_case("a", 20).exam.accession == "e"
    assert wl.sign("e") == "a"
    with pytest.raises(BalanceError, match="not open"):
        wl.sign("e")
    with pytest.raises(BalanceError, match="unknown reader"):
        wl.open_case("nobody", 20)


def test_cancel_takes_the_exam_off_and_gives_its_effort_back():
    wl = Worklist([Reader("a")], [day_shift("a")])
    wl.add(exam("1", effort=2.0))
    wl.assign(H)
    wl.cancel("1")
    assert wl.ledgers["a"].assigned_effort == 0 and not wl.holder


# -- properties ----------------------------------------------------------------------------------------------

CREDENTIALS = ["", "MQSA"]
SUBSPECIALTIES = ["", "neuro", "msk"]
SITES = ["", "north", "south"]

readers_st = st.lists(
    st.builds(
        Reader,
        name=st.sampled_from("abcdef"),
        credentials=st.frozensets(st.sampled_from(CREDENTIALS[1:])),
        subspecialties=st.frozensets(st.sampled_from(SUBSPECIALTIES[1:])),
        sites=st.frozensets(st.sampled_from(SITES[1:])),
        max_queued=st.integers(1, 3),
        max_outstanding_effort=st.sampled_from([0.0, 2.0, 5.0]),
    ),
    min_size=1,
    max_size=5,
    unique_by=lambda r: r.name,
)
events_st = st.lists(
    st.tuples(
        st.sampled_from(["add", "add", "add", "open", "sign", "tick"]),
        st.integers(0, 7),  # patient / reader index
        st.sampled_from(["STAT", "expedited", "routine"]),
        st.sampled_from(CREDENTIALS),
        st.sampled_from(SUBSPECIALTIES),
        st.sampled_from(SITES),
        st.floats(0.1, 4.0),
        st.floats(0, 1200),  # seconds to advance
    ),
    max_size=80,
)
POLICY = Policy(classes=(PriorityClass("STAT", 0, 1800), PriorityClass("expedited", 1, 3600), PriorityClass("routine", 2, 7200)))


# no shrinking phase: shrinking these long event lists ran for minutes; the assertion messages say what broke
@settings(max_examples=80, deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate), print_blob=True)
@given(readers=readers_st, events=events_st, shift_seed=st.integers(0, 3))
def test_properties_over_random_worklists(readers, events, shift_seed):
    """No exam in two places, lost or counted twice; hard constraints never broken; caps held except for grouping; no escalated exam
    left waiting while a reader it could go to takes a non-escalated one."""
    shifts = [
        Shift(r.name, i * 1800.0 * shift_seed, i * 1800.0 * shift_seed + 6 * H, 5.0, ((2 * H, 2.5 * H),) if i % 2 else ())
        for i, r in enumerate(readers)
    ]
    wl = Worklist(readers, shifts, POLICY)
    now, count, signed = 0.0, 0, set()
    signed_effort = {r.name: 0.0 for r in readers}
    by_name = {r.name: r for r in readers}
    for kind, index, priority, credential, subspecialty, site, effort, advance in events:
        now += advance
        if kind == "add":
            count += 1
            wl.add(Exam(f"A{count}", f"P{index}", "CT", priority, now, effort, "", site, subspecialty, credential))
        elif kind == "open":
            wl.open_case(readers[index % len(readers)].name, now)
        elif kind == "sign":
            started = sorted(a for a, r in wl.holder.items() if wl.ledgers[r].open[a].started is not None)
            if started:
                accession = started[index % len(started)]
                signed_effort[wl.holder[accession]] += wl.ledgers[wl.holder[accession]].open[accession].exam.effort
                wl.sign(accession)
                signed.add(accession)
        working = wl.working(now)
        decisions = wl.assign(now)
        for d in decisions:
            reader = by_name[d.reader]
            ex = wl.ledgers[d.reader].open[d.accession].exam
            assert d.reader in working, "assigned to a reader who is not working"
            assert qualified(reader, ex) == "", "hard constraint broken"
            if "same patient" not in d.reason:
                # caps: the list may not exceed max_queued through a non-grouped assignment
                assert len(wl.ledgers[d.reader].queued()) <= reader.max_queued + _grouped(wl, d.reader)
                # escalation: an escalated exam left waiting that this reader could read did not fit under the
                # effort cap, while the non-escalated one given instead did (it is smaller)
                if not POLICY.escalated(ex, now):
                    for other in wl.waiting.values():
                        if POLICY.escalated(other, now) and not qualified(reader, other):
                            assert reader.max_outstanding_effort > 0 and other.effort > ex.effort, (
                                f"{other.accession} escalated but passed over for {ex.accession}"
                            )
        # effort assigned = effort of the exams open on the list or signed by that reader: nothing counted twice
        for name, ledger in wl.ledgers.items():
            mine = sum(o.exam.effort for o in ledger.open.values()) + signed_effort[name]
            assert ledger.assigned_effort == pytest.approx(mine), f"{name}'s ledger counts an exam twice or not at all"
        # every exam is in exactly one place
        places = list(wl.waiting) + list(wl.holder)
        assert len(places) == len(set(places))
        assert set(places) | signed == {f"A{i}" for i in range(1, count + 1)}
        assert not set(places) & signed


def _grouped(wl: Worklist, reader: str) -> int:
    """Queued exams on the list that share a patient with another open exam (grouping may pass the cap)."""
    patients = [o.exam.patient for o in wl.ledgers[reader].open.values()]
    return sum(1 for o in wl.ledgers[reader].queued() if patients.count(o.exam.patient) > 1)


def test_the_reader_free_first_takes_a_stat_from_a_busy_readers_list():
    wl = Worklist([Reader("a", max_queued=1), Reader("b", max_queued=1)], [day_shift("a"), day_shift("b")])
    wl.add(exam("r1", arrived=0))
    wl.add(exam("r2", arrived=1))
    wl.open_case("a", 10)  # a opens one routine exam, b has the other on their list
    wl.open_case("b", 10)
    wl.add(exam("s1", "STAT", arrived=20))
    [decision] = wl.assign(20)
    assert decision.reader == "a"  # urgent: both have one exam open, the same effort: by name
    assert "urgent" in decision.reason
    wl.sign("r2")
    case = wl.open_case("b", 30)  # b is free first: the STAT leaves a's list, unopened
    assert case.exam.accession == "s1" and "b asked first" in case.reason
    assert "s1" not in wl.ledgers["a"].open and wl.ledgers["a"].assigned_effort == 1.0
    journal = wl.take_journal()
    assert [j.accession for j in journal][-1] == "s1" and wl.take_journal() == []


def test_a_pull_takes_among_the_head_the_exam_fewest_working_readers_may_read():
    """Rule 5, matching: the msk reader takes the MR only they may read before an older radiograph anyone may read;
    the other reader then gets the radiograph. Beyond the window, or behind a STAT, reading order decides."""
    readers = [Reader("a", subspecialties=frozenset({"msk"})), Reader("b")]
    wl = Worklist(readers, [day_shift("a"), day_shift("b")])
    wl.add(exam("xr", arrived=0, modality="XR"))
    wl.add(exam("mr", arrived=60, modality="MR", subspecialty="msk"))
    case = wl.open_case("a", 600)
    assert case.exam.accession == "mr"
    assert "the one the fewest working readers may read (1 of 2, against 2 for the first)" in case.reason
    assert wl.open_case("b", 600).exam.accession == "xr"

    wl = Worklist(readers, [day_shift("a"), day_shift("b")], Policy(match_window=1))
    wl.add(exam("xr", arrived=0, modality="XR"))
    wl.add(exam("mr", arrived=60, modality="MR", subspecialty="msk"))
    assert wl.open_case("a", 600).exam.accession == "xr"  # a window of 1: the head of the reading order

    wl = Worklist(readers, [day_shift("a"), day_shift("b")])
    wl.add(exam("stat", "STAT", arrived=0, modality="XR"))
    wl.add(exam("mr", arrived=60, modality="MR", subspecialty="msk"))
    assert wl.open_case("a", 600).exam.accession == "stat"  # urgent exams are never weighed


def test_matching_looks_only_at_the_first_exams_of_the_reading_order():
    readers = [Reader("a", subspecialties=frozenset({"msk"}), max_queued=5), Reader("b", max_queued=5)]
    wl = Worklist(readers, [day_shift("a"), day_shift("b")], Policy(match_window=3))
    for i in range(3):
        wl.add(exam(f"xr{i}", arrived=i, modality="XR"))
    wl.add(exam("mr", arrived=60, modality="MR", subspecialty="msk"))  # fourth in reading order
    assert wl.open_case("a", 600).exam.accession == "xr0"
