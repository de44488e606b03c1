"""The transaction's decisions, pure: every failure path walked step by step (change/transaction.py)."""

from __future__ import annotations

import pytest

from pacslb.change.transaction import (
    Begin,
    Check,
    Commit,
    Failure,
    Record,
    Transaction,
    TransactionError,
    Undo,
    settle,
    stale,
)

ENGINES = ["nftables", "haproxy", "keepalived"]


def walk(tx: Transaction, failures: dict | None = None) -> list:
    """Run the transaction to its Record, failing the steps named in `failures`; returns every step handed out."""
    failures = failures or {}
    steps = []
    while (step := tx.next_step()) is not None:
        steps.append(step)
        if isinstance(step, Record):
            continue
        tx.done(step, failures.get(step))
    return steps


def test_every_check_then_begin_then_every_commit_in_order():
    steps = walk(Transaction(ENGINES))
    assert steps == [Check("nftables"), Check("haproxy"), Check("keepalived"), Begin(),
                     Commit("nftables"), Commit("haproxy"), Commit("keepalived"),
                     Record(True, committed=tuple(ENGINES))]  # fmt: skip


def test_a_check_that_fails_commits_nothing_and_undoes_nothing():
    steps = walk(Transaction(ENGINES), {Check("haproxy"): Failure("HAProxy refuses it", ("line 3: bad",))})
    assert steps[:2] == [Check("nftables"), Check("haproxy")]
    assert not [s for s in steps if isinstance(s, (Commit, Undo, Begin))]
    record = steps[-1]
    assert record == Record(False, "HAProxy refuses it", ("line 3: bad",))


def test_begin_that_fails_commits_nothing():
    """The revision store could not take the digests: nothing has run yet."""
    steps = walk(Transaction(ENGINES), {Begin(): Failure("the revision store cannot be written")})
    assert not [s for s in steps if isinstance(s, (Commit, Undo))]
    assert steps[-1].applied is False and steps[-1].summary == "the revision store cannot be written"


def test_commit_of_engine_2_fails_after_engine_1_committed():
    steps = walk(Transaction(ENGINES), {Commit("haproxy"): Failure("the reload failed", ("exit 1",))})
    after = steps[steps.index(Commit("haproxy")) + 1 :]
    # the failed engine first (its commit may be half done), then the one committed before it; keepalived never ran
    assert after == [Undo("haproxy"), Undo("nftables"), Record(False, "the reload failed", ("exit 1",))]


def test_the_last_engine_failing_undoes_every_other_in_reverse_order():
    steps = walk(Transaction(ENGINES), {Commit("keepalived"): Failure("keepalived could not be reloaded")})
    undos = [s for s in steps if isinstance(s, Undo)]
    assert undos == [Undo("keepalived"), Undo("haproxy"), Undo("nftables")]
    assert steps[-1].applied is False and steps[-1].committed == ()


def test_an_undo_that_fails_goes_on_with_the_others_and_is_named():
    steps = walk(Transaction(ENGINES), {
        Commit("keepalived"): Failure("keepalived could not be reloaded"),
        Undo("haproxy"): Failure("HAProxy could not be set back", ("socket gone",)),
    })  # fmt: skip
    assert [s for s in steps if isinstance(s, Undo)] == [Undo("keepalived"), Undo("haproxy"), Undo("nftables")]
    record = steps[-1]
    assert record.applied is False
    assert record.undo_failed == ("haproxy",) and record.committed == ("haproxy",)
    assert "haproxy could not be set back and may run the new configuration" in record.summary
    assert "haproxy could not be set back: HAProxy could not be set back" in record.messages
    assert "socket gone" in record.messages


def test_a_transaction_of_no_engine_records_at_once():
    assert walk(Transaction([])) == [Begin(), Record(True)]


def test_the_runner_must_report_the_step_it_was_given():
    tx = Transaction(ENGINES)
    first = tx.next_step()
    with pytest.raises(TransactionError, match="was handed out and not reported"):
        tx.next_step()
    with pytest.raises(TransactionError, match="reported Check"):
        tx.done(Check("keepalived"))
    tx.done(first)
    with pytest.raises(TransactionError, match="named twice"):
        Transaction(["haproxy", "haproxy"])


def test_nothing_follows_the_record():
    tx = Transaction(["haproxy"])
    walk(tx)
    assert tx.next_step() is None


# --- startup: a controller killed between commit and record ------------------------------------------------


def test_killed_between_commit_and_record_is_applied_when_every_engine_runs_it():
    pending = {7: {"haproxy": "h7", "nftables": "n7"}}
    (verdict,) = settle(pending, {"haproxy": "h7", "nftables": "n7", "keepalived": None})
    assert verdict.revision == 7 and verdict.applied


def test_killed_half_way_through_the_commits_is_failed():
    (verdict,) = settle({7: {"haproxy": "h7", "nftables": "n7"}}, {"haproxy": "h6", "nftables": "n7"})
    assert not verdict.applied and "before every engine confirmed it" in verdict.reason


def test_killed_before_begin_is_failed():
    (verdict,) = settle({7: {}}, {"haproxy": "h6"})
    assert not verdict.applied and "before the engines checked it" in verdict.reason


def test_nothing_runs_nothing_is_applied():
    assert [v.applied for v in settle({3: {"haproxy": "a"}, 4: {"haproxy": "b"}}, {})] == [False, False]


# --- the stale-revision check every door uses -------------------------------------------------------------


def test_stale():
    assert stale(None, 5) is None  # no base named: nothing to compare
    assert stale(5, 5) is None
    assert stale(4, 5) == ("revision 4 is not the current one (revision 5 is): read the configuration again and "
                           "redo the change on it")  # fmt: skip
