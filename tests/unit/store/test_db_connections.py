"""store/db.py Connections: a kept connection per thread, opened again when its file was replaced (a restore)."""

from __future__ import annotations

import os
import sqlite3
import threading

from pacslb.store import RevisionStore


def add(store: RevisionStore, message: str) -> int:
    rev = store.add({"version": 1}, "", author="a", message=message, kind="file", parent=None)
    store.mark_applied(rev.id)
    return rev.id


def test_a_replaced_store_file_is_read_from_the_new_one(tmp_path) -> None:
    store = RevisionStore(tmp_path / "revisions.sqlite")
    add(store, "first")
    assert store.current().message == "first"  # the connection is kept from here on
    other = RevisionStore(tmp_path / "other.sqlite")
    add(other, "restored")
    add(other, "restored too")
    with sqlite3.connect(other.path) as db:  # a whole file, as a restore writes one
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    os.replace(other.path, store.path)
    assert store.current().message == "restored too" and store.ids() == [1, 2]


def test_each_thread_has_its_own_connection_and_every_commit_is_seen(tmp_path) -> None:
    store = RevisionStore(tmp_path / "revisions.sqlite")
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(5):
                add(store, f"{n}-{i}")
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == [] and len(store.ids()) == 20 and store.check_integrity() == []
