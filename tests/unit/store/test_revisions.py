"""The revision store: pending -> applied | failed, the current revision, the history's diffs, atomicity."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from pacslb.model import load_text
from pacslb.store import RevisionStatus, RevisionStore, StoreError
from pacslb.store.history import revision_diff

YAML = """version: 1
virtual_services:
  - name: web
    mode: layer7-http
    listen: [{address: 127.0.0.1, port: 8080}]
    real_servers:
      - {name: rs1, address: 127.0.0.2, port: 80, weight: WEIGHT}
"""


def data(weight: int = 100) -> tuple[dict, str]:
    text = YAML.replace("WEIGHT", str(weight))
    loaded = load_text(text)
    assert loaded.ok
    return loaded.config.model_dump(mode="json"), text


@pytest.fixture
def store(tmp_path):
    ticks = iter(range(1000, 100000))
    return RevisionStore(tmp_path / "revisions.sqlite", clock=lambda: float(next(ticks)))


def add(store, weight=100, **kwargs):
    config, text = data(weight)
    defaults = dict(author="alice", message=f"weight {weight}", kind="apply", parent=None)
    return store.add(config, text, **{**defaults, **kwargs})


def test_a_new_revision_is_pending_and_not_current(store):
    rev = add(store)
    assert rev.id == 1 and rev.status is RevisionStatus.PENDING and not rev.applied
    assert rev.author == "alice" and rev.message == "weight 100" and rev.kind == "apply"
    assert rev.config_yaml == YAML.replace("WEIGHT", "100")
    assert rev.config_data["virtual_services"][0]["real_servers"][0]["weight"] == 100
    assert store.current() is None
    assert [r.id for r in store.pending()] == [1]


def test_applied_becomes_current_failed_never(store):
    first = add(store)
    store.mark_applied(first.id)
    second = add(store, 50, parent=first.id)
    store.mark_failed(second.id, "haproxy -c: alert")
    current = store.current()
    assert current.id == first.id and current.applied and current.applied_at is not None
    failed = store.get(second.id)
    assert failed.status is RevisionStatus.FAILED and failed.error == "haproxy -c: alert" and not failed.applied
    third = add(store, 70, parent=first.id)
    store.mark_applied(third.id)
    assert store.current().id == third.id
    assert store.previous_applied(third.id).id == first.id
    assert [r.id for r in store.list()] == [3, 2, 1]
    assert [r.id for r in store.list(limit=1, before=3)] == [2]
    assert store.check_integrity() == []


def test_only_pending_moves(store):
    rev = add(store)
    store.mark_applied(rev.id)
    with pytest.raises(StoreError):
        store.mark_applied(rev.id)
    store.mark_failed(rev.id, "late")  # a no-op: an applied revision stays applied
    assert store.get(rev.id).applied


def test_equal_models_equal_digests(store):
    a, b, c = add(store), add(store), add(store, 50)
    assert a.digest == b.digest != c.digest


def test_engine_digest_and_plan(store):
    rev = add(store, plan={"method": "runtime"})
    store.set_engine_digest(rev.id, "abc")
    store.mark_applied(rev.id, plan={"method": "reload"})
    found = store.get(rev.id)
    assert found.engine_digest == "abc" and found.plan == {"method": "reload"}
    assert found.summary()["method"] == "reload"


def test_meta(store):
    assert store.meta("config_file") is None
    store.set_meta("config_file", {"path": "/x", "sha256": "1"})
    assert store.meta("config_file") == {"path": "/x", "sha256": "1"}


def test_a_failed_transaction_leaves_nothing(store, monkeypatch):
    first = add(store)
    with pytest.raises(RuntimeError):
        with store._connect() as db:
            db.execute("UPDATE revisions SET status = 'applied', applied = 1, applied_at = 1 WHERE id = ?", (first.id,))
            raise RuntimeError("killed in the middle")
    assert store.get(first.id).status is RevisionStatus.PENDING


def test_the_database_refuses_an_inconsistent_row(store):
    rev = add(store)
    with pytest.raises(sqlite3.IntegrityError):
        db = sqlite3.connect(store.path)
        try:
            db.execute("UPDATE revisions SET status = 'applied' WHERE id = ?", (rev.id,))  # applied flag still 0
            db.commit()
        finally:
            db.close()


def test_readers_need_an_existing_store(tmp_path):
    with pytest.raises(StoreError, match="no revisions are recorded yet"):
        RevisionStore(tmp_path / "none.sqlite", create=False)
    assert not (tmp_path / "none.sqlite").exists()


def test_concurrent_writers(store):
    errors = []

    def write(n):
        try:
            for _ in range(10):
                rev = add(store, n)
                store.mark_applied(rev.id)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.list(limit=100)) == 40
    assert store.check_integrity() == []


# --- history ---------------------------------------------------------------------------------------


def test_diff_rules(store):
    revs = []
    for weight in (100, 50, 70):
        rev = add(store, weight)
        store.mark_applied(rev.id)
        revs.append(rev)
    failed = add(store, 5)
    store.mark_failed(failed.id, "no")

    last = revision_diff(store)  # what the last applied revision changed
    assert (last.old.id, last.new.id) == (2, 3)
    assert [str(c) for c in last.changes] == ["virtual_services[web].real_servers[rs1].weight: 50 -> 70"]

    since = revision_diff(store, 1)  # from 1 to what runs
    assert (since.old.id, since.new.id) == (1, 3)
    assert [str(c) for c in since.changes] == ["virtual_services[web].real_servers[rs1].weight: 100 -> 70"]

    between = revision_diff(store, 3, failed.id)
    assert [str(c) for c in between.changes] == ["virtual_services[web].real_servers[rs1].weight: 70 -> 5"]

    first = revision_diff(store, None, 1)
    assert first.old is None and first.changes == []
    assert first.as_dict()["from"] is None

    with pytest.raises(StoreError, match="no revision 99"):
        revision_diff(store, 99)


def test_diff_without_any_applied_revision(store):
    with pytest.raises(StoreError, match="no revision has been applied yet"):
        revision_diff(store)


def test_lists_and_summaries_leave_the_configuration_out(store):
    rev = add(store)
    store.mark_applied(rev.id)
    assert store.current_id() == rev.id
    (listed,) = store.list()
    assert listed.config_json == "" and listed.digest == rev.digest and listed.plan == rev.plan
    with pytest.raises(StoreError, match="without its configuration"):
        _ = listed.config_data
    assert store.get(rev.id, with_config=False).config_yaml == ""
    assert store.get(rev.id).config_data == rev.config_data


def test_add_returns_what_get_reads(store):
    rev = add(store, plan={"method": "reload"}, engine_digest="e")
    assert store.get(rev.id) == rev
    assert RevisionStore(store.path).current_id() is None
