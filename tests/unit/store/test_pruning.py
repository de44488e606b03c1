"""Pruning the revision store: the latest `keep` kept, never the current nor a pending one; space given back."""

from __future__ import annotations

import json
import sqlite3

import pytest

from pacslb.model import load_text
from pacslb.store import RevisionStatus, RevisionStore, StoreError
from pacslb.store.history import revision_diff
from pacslb.store.pruning import MIN_KEEP, should_vacuum

YAML = """version: 1
settings:
  revisions: {keep: KEEP}
virtual_services:
  - name: web
    mode: layer7-http
    listen: [{address: 127.0.0.1, port: 8080}]
    real_servers:
      - {name: rs1, address: 127.0.0.2, port: 80, weight: WEIGHT}
"""


def data(weight: int, keep: int, padding: int = 0) -> tuple[dict, str]:
    text = YAML.replace("WEIGHT", str(weight)).replace("KEEP", str(keep))
    loaded = load_text(text)
    assert loaded.ok, loaded.problems
    dump = loaded.config.model_dump(mode="json")
    if padding:  # a large configuration without building one: the store keeps the JSON as given
        dump["virtual_services"][0]["description"] = "x" * padding
    return dump, text


@pytest.fixture
def store(tmp_path):
    ticks = iter(range(1000, 100000))
    return RevisionStore(tmp_path / "revisions.sqlite", clock=lambda: float(next(ticks)))


def applied(store, weight: int = 1, keep: int = MIN_KEEP, padding: int = 0):
    config, text = data(weight, keep, padding)
    rev = store.add(config, text, author="alice", message=f"weight {weight}", kind="apply",
                    parent=store.current_id())  # fmt: skip
    store.mark_applied(rev.id)
    return rev


def failed(store, weight: int = 1, keep: int = MIN_KEEP):
    config, text = data(weight, keep)
    rev = store.add(config, text, author="bob", message="bad", kind="apply", parent=store.current_id())
    store.mark_failed(rev.id, "haproxy -c: alert")
    return rev


def ids(store) -> list[int]:
    return sorted(r.id for r in store.list(10_000))


def test_each_applied_revision_prunes_the_oldest_beyond_keep(store):
    for weight in range(1, 16):
        applied(store, weight, keep=10)
    assert ids(store) == list(range(6, 16))
    assert store.current_id() == 15
    info = store.retention()
    assert info["keep"] == 10 and info["stored"] == 10 and info["oldest"] == 6
    assert info["pruned"]["through"] == 5 and info["pruned"]["count"] == 5
    assert store.check_integrity() == []


def test_the_current_revision_is_kept_even_when_older_than_keep(store):
    applied(store, 1, keep=10)
    for _ in range(12):
        failed(store)
    store.prune(10)
    assert 1 in ids(store) and store.current_id() == 1
    assert ids(store) == [1, *range(4, 14)]


def test_a_pending_revision_is_never_pruned(store):
    config, text = data(1, 10)
    left = store.add(config, text, author="alice", message="in flight", kind="apply", parent=None)
    for weight in range(2, 20):
        applied(store, weight, keep=10)
    assert left.id in ids(store) and store.get(left.id).status is RevisionStatus.PENDING
    assert len(ids(store)) == 11


def test_the_keep_of_the_revision_just_applied_decides(store):
    for weight in range(1, 31):
        applied(store, weight, keep=30)
    assert len(ids(store)) == 30
    applied(store, 99, keep=12)  # lowering the setting prunes at once, with the revision that lowers it
    assert ids(store) == list(range(20, 32))


def test_a_revision_without_the_setting_keeps_the_default(store):
    config, text = data(1, 10)
    del config["settings"]["revisions"]  # written by a release that had no such setting
    rev = store.add(config, text, author="alice", message="old", kind="apply", parent=None)
    store.mark_applied(rev.id)
    assert store.retention()["keep"] == 500


def test_a_kept_revision_loses_only_a_pruned_parent(store):
    for weight in range(1, 13):
        applied(store, weight, keep=10)
    assert store.get(3).parent is None  # its parent, 2, was pruned (the column is a foreign key)
    assert store.get(4).parent == 3


def test_keep_below_the_minimum_is_refused(store):
    applied(store)
    with pytest.raises(ValueError, match="at least 10"):
        store.prune(9)
    assert ids(store) == [1]


def test_a_pruned_revision_is_told_apart_from_one_that_never_was(store):
    for weight in range(1, 14):
        applied(store, weight, keep=10)
    assert store.missing(2) == ("revision 2 was pruned: the store keeps the latest 10 revisions (10 now, the oldest 4); "
                                "raise settings.revisions.keep to keep more")  # fmt: skip
    assert store.missing(99) == "there is no revision 99"
    with pytest.raises(StoreError, match="revision 1 was pruned"):
        revision_diff(store, 1)


def test_pruning_by_hand_reports_what_it_deleted(store):
    for weight in range(1, 21):
        applied(store, weight, keep=30)
    done = store.prune(12)
    assert done.deleted == list(range(1, 9)) and done.kept == 12
    assert store.prune(12).deleted == []
    assert store.meta("pruned")["count"] == 8


def test_a_new_store_is_incremental_and_gives_space_back(store):
    padding = 400_000
    for weight in range(1, 31):
        applied(store, weight, keep=30, padding=padding)
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # INCREMENTAL
        pages_before = db.execute("PRAGMA page_count").fetchone()[0]
    done = store.prune(10)
    assert len(done.deleted) == 20 and done.pages_freed > 0
    with sqlite3.connect(store.path) as db:
        pages_after = db.execute("PRAGMA page_count").fetchone()[0]
        assert db.execute("PRAGMA freelist_count").fetchone()[0] == 0
    assert pages_after < pages_before * 0.5


def test_one_pruned_per_apply_leaves_free_pages_for_reuse(store):
    padding = 400_000
    for weight in range(1, 11):
        applied(store, weight, keep=10, padding=padding)
    with sqlite3.connect(store.path) as db:
        pages = db.execute("PRAGMA page_count").fetchone()[0]
    for weight in range(11, 21):  # the steady state: one in, one out
        applied(store, weight, keep=10, padding=padding)
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA page_count").fetchone()[0] <= pages * 1.2  # no growth beyond one revision's slack


def test_an_older_store_is_pruned_then_converted_by_vacuum(tmp_path):
    path = tmp_path / "revisions.sqlite"
    with sqlite3.connect(path) as db:  # a store made before pruning existed: auto_vacuum NONE
        db.execute("CREATE TABLE early (x)")
        db.execute("DROP TABLE early")
    old = RevisionStore(path)
    for weight in range(1, 21):
        applied(old, weight, keep=30, padding=200_000)
    done = old.prune(10)
    assert len(done.deleted) == 10 and done.pages_freed == 0  # free pages stay for reuse: no VACUUM unasked
    assert old.retention()["incremental_vacuum"] is False
    done = old.prune(10, vacuum=True)
    assert done.deleted == [] and done.pages_freed > 0
    assert old.retention()["incremental_vacuum"] is True
    assert ids(old) == list(range(11, 21)) and old.check_integrity() == []


def test_pruning_that_fails_does_not_undo_the_applied_mark(store, monkeypatch):
    def broken(keep, vacuum=False):
        raise StoreError("disk I/O error")

    monkeypatch.setattr(store, "prune", broken)
    rev = applied(store)
    assert store.current_id() == rev.id


@pytest.mark.parametrize(("free", "pages", "expected"), [(0, 100, False), (25, 100, False), (26, 100, True), (0, 0, False)])
def test_space_is_given_back_above_a_quarter_free(free, pages, expected):
    assert should_vacuum(free, pages) is expected


def test_retention_is_json(store):
    applied(store)
    assert json.loads(json.dumps(store.retention()))["setting"] == "settings.revisions.keep"
