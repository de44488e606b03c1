"""Revisions stored as deltas: every revision reads back as the very JSON it was written with, at most
SNAPSHOT_EVERY - 1 deltas from a whole one; pruning keeps the bases of what it keeps; a store of schema 1
(before deltas) keeps working."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pacslb.change.revision_json import RevisionJson
from pacslb.change.service import with_real_servers
from pacslb.model import Config, validate_data
from pacslb.model.config import RealServerState
from pacslb.store import RevisionStatus, RevisionStore, StoreError
from pacslb.store import revision_delta as deltas
from pacslb.store.revision_delta import Delta, Parts

SCHEMA1 = Path(__file__).parents[2] / "data" / "revisions-schema1.sqlite"


def config(services: int = 12, servers: int = 3, keep: int = 10) -> Config:
    data = {
        "version": 1,
        "settings": {"revisions": {"keep": keep}},
        "virtual_services": [
            {"name": f"svc{i}", "mode": "layer7-http", "listen": [{"address": "127.0.0.1", "port": 30000 + i}],
             "real_servers": [{"name": f"rs{j}", "address": f"127.0.1.{i + 1}", "port": 10000 + j} for j in range(servers)]}
            for i in range(services)
        ],
    }  # fmt: skip
    loaded = validate_data(data)
    assert loaded.ok and loaded.config is not None, loaded.problems
    return loaded.config


class Writer:
    """What change/service.py does: each revision from RevisionJson, a delta of the last one written."""

    def __init__(self, store: RevisionStore) -> None:
        self.store, self.json, self.base = store, RevisionJson(), None
        self.written: dict[int, str] = {}  # id -> the whole JSON written

    def write(self, cfg: Config, status: str = "applied", fresh: bool = False) -> int:
        if fresh:  # a new controller: nothing dumped yet, no base
            self.json, self.base = RevisionJson(), None
        parts = self.json.dump_parts(cfg)
        assert isinstance(parts, Parts) and parts.text() == cfg.model_dump_json()
        kwargs = dict(author="op", message="m", kind="server", parent=self.store.current_id(), base=self.base)
        if status == "applied":
            rev, _ = self.store.add_applied(parts, "", **kwargs)
        else:
            rev = self.store.add(parts, "", status=RevisionStatus(status), **kwargs)
        self.base = (rev.id, rev.digest, parts)
        self.written[rev.id] = cfg.model_dump_json()
        return rev.id


def rows(store: RevisionStore) -> dict[int, tuple[int | None, int]]:
    with sqlite3.connect(store.path) as db:
        return {r[0]: (r[1], r[2]) for r in db.execute("SELECT id, delta_base, depth FROM revisions")}


def assert_every_revision_reads_back(store: RevisionStore, writer: Writer) -> None:
    kept = store.ids()
    for rev_id in kept:
        rev = store.get(rev_id)
        assert rev is not None and rev.config_json == writer.written[rev_id], f"revision {rev_id}"
    assert store.check_integrity() == []
    for rev_id, (base, depth) in rows(store).items():
        assert depth < deltas.SNAPSHOT_EVERY and (base is None) == (depth == 0), (rev_id, base, depth)


# --- the delta itself ------------------------------------------------------------------------------------------


def test_split_and_apply_give_back_the_very_text() -> None:
    cfg = config()
    text = cfg.model_dump_json()
    parts = deltas.split(text)
    assert parts is not None and parts.text() == text and len(parts.services) == 12
    changed = deltas.split(with_real_servers(cfg, {("svc2", "rs1"): {"weight": 7}}).model_dump_json())
    delta = deltas.between(parts, changed)
    assert delta.head is None and delta.segments[0] == (0, 2) and isinstance(delta.segments[1], str)
    assert delta.segments[2] == (3, 12)
    assert deltas.apply(parts, deltas.decode(delta.encode())) == changed
    # the cuts stored with a whole text are used when they fit it, else the text is parsed
    assert deltas.split(text, deltas.cuts(parts)) == parts
    for wrong in ("[5,10]", deltas.cuts(changed)[:-3] + "]", "nonsense", "[]"):
        assert deltas.split(text, wrong) == parts
    empty = Parts('{"virtual_services":[', (), "]}")
    assert deltas.split(empty.text(), deltas.cuts(empty)) == empty == deltas.split(empty.text())


def test_a_text_that_cannot_be_cut_with_certainty_is_never_a_base(tmp_path) -> None:
    text = config().model_dump_json().replace('"svc0"', '"svc0 \\"virtual_services\\":["', 1)
    assert deltas.split(text.replace("\\", "")) is None  # the mark twice: not cut
    store = RevisionStore(tmp_path / "r.sqlite")
    rev = store.add(text.replace("\\", ""), "", author="a", message="m", kind="file", parent=None)
    assert rows(store)[rev.id] == (None, deltas.SNAPSHOT_EVERY)  # NOT_A_BASE
    base = (rev.id, rev.digest, Parts('{"virtual_services":[', (), "]}"))
    after = store.add(Parts('{"virtual_services":[', (), "]}"), "", author="a", message="m", kind="file", parent=None, base=base)
    assert rows(store)[after.id][0] is None  # written whole: its base may not be cut on reading


def test_a_bad_delta_is_a_store_error_naming_the_revision() -> None:
    with pytest.raises(deltas.DeltaError):
        deltas.apply(Parts("[", ("{}",), "]"), Delta(None, ((0, 2),)))
    with pytest.raises(deltas.DeltaError):
        deltas.decode('{"head": null}')


# --- chains of revisions ---------------------------------------------------------------------------------------

CHANGE = st.one_of(
    st.tuples(st.just("weight"), st.integers(0, 5), st.integers(0, 2), st.integers(0, 256)),
    st.tuples(st.just("state"), st.integers(0, 5), st.integers(0, 2), st.sampled_from(list(RealServerState))),
    st.tuples(st.just("add"), st.integers(0, 5), st.integers(0, 0), st.integers(0, 0)),
    st.tuples(st.just("remove"), st.integers(0, 5), st.integers(0, 0), st.integers(0, 0)),
    st.tuples(st.just("settings"), st.integers(0, 0), st.integers(0, 0), st.integers(1, 4)),
)
HOW = st.sampled_from(["applied", "applied", "applied", "failed", "pending", "fresh"])


def changed(cfg: Config, change: tuple, serial: int) -> Config:
    what, i, j, value = change
    services = cfg.virtual_services
    if what in ("weight", "state") and services:
        vs = services[i % len(services)]
        key = "weight" if what == "weight" else "state"
        return with_real_servers(cfg, {(vs.name, vs.real_servers[j % len(vs.real_servers)].name): {key: value}})
    if what == "add":
        new = services[0].model_copy(update={"name": f"new{serial}"}) if services else config(1).virtual_services[0]
        return cfg.model_copy(
            update={"virtual_services": [*services[: i % (len(services) + 1)], new, *services[i % (len(services) + 1) :]]}
        )
    if what == "remove" and len(services) > 1:
        return cfg.model_copy(update={"virtual_services": [v for k, v in enumerate(services) if k != i % len(services)]})
    settings_ = cfg.settings.model_copy(update={"retries": value})
    return cfg.model_copy(update={"settings": settings_})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(CHANGE, HOW), min_size=1, max_size=25))
def test_every_revision_of_a_random_chain_reads_back_as_its_whole_json(chain) -> None:
    with tempfile.TemporaryDirectory() as tmp, mock.patch.object(deltas, "SNAPSHOT_EVERY", 4):
        store = RevisionStore(Path(tmp) / "r.sqlite")
        writer = Writer(store)
        cfg = config()
        writer.write(cfg)
        for serial, (change, how) in enumerate(chain):
            cfg = changed(cfg, change, serial)
            writer.write(cfg, status="applied" if how == "fresh" else how, fresh=how == "fresh")
        assert_every_revision_reads_back(store, writer)


def test_a_runtime_change_is_a_delta_and_every_nth_revision_whole(tmp_path) -> None:
    store = RevisionStore(tmp_path / "r.sqlite")
    writer = Writer(store)
    cfg = config(services=20, keep=500)
    for n in range(2 * deltas.SNAPSHOT_EVERY + 5):
        cfg = with_real_servers(cfg, {(f"svc{n % 20}", "rs0"): {"weight": n % 256}})
        writer.write(cfg)
    found = rows(store)
    whole = [i for i, (base, _) in found.items() if base is None]
    assert whole == [1, 1 + deltas.SNAPSHOT_EVERY, 1 + 2 * deltas.SNAPSHOT_EVERY]
    assert max(depth for _, depth in found.values()) == deltas.SNAPSHOT_EVERY - 1
    with sqlite3.connect(store.path) as db:  # a delta is a service's JSON, not the whole configuration
        sizes = dict(db.execute("SELECT id, length(config_json) FROM revisions"))
    assert sizes[2] * 5 < sizes[1]
    assert_every_revision_reads_back(store, writer)


def test_a_base_whose_digest_differs_is_not_used(tmp_path) -> None:
    store = RevisionStore(tmp_path / "r.sqlite")
    writer = Writer(store)
    cfg = config()
    writer.write(cfg)
    writer.base = (writer.base[0], "0" * 64, writer.base[2])  # not what is stored (a rewritten revision)
    rev_id = writer.write(with_real_servers(cfg, {("svc0", "rs0"): {"weight": 3}}))
    assert rows(store)[rev_id] == (None, 0)
    assert_every_revision_reads_back(store, writer)


# --- pruning ---------------------------------------------------------------------------------------------------


def test_pruning_keeps_the_bases_of_kept_deltas_and_never_more_than_a_chain(tmp_path) -> None:
    store = RevisionStore(tmp_path / "r.sqlite")
    writer = Writer(store)
    cfg = config(keep=10)
    with mock.patch.object(deltas, "SNAPSHOT_EVERY", 6):
        for n in range(40):
            cfg = with_real_servers(cfg, {(f"svc{n % 4}", "rs1"): {"weight": n}})
            writer.write(cfg, status="failed" if n % 7 == 3 else "applied")
            kept = store.ids()
            newest = kept[-10:]
            assert newest == list(range(n + 2 - 10, n + 2)) if n >= 9 else True
            assert len(kept) <= 10 + 6 - 1  # at most a chain beyond keep
            assert_every_revision_reads_back(store, writer)
        # the oldest kept is whole, or a delta whose bases are all kept
        found = rows(store)
        assert all(base is None or base in found for base, _ in found.values())
        assert store.retention()["pruned"]["count"] == 40 - len(kept)


def test_the_database_refuses_to_delete_a_base_that_a_delta_needs(tmp_path) -> None:
    store = RevisionStore(tmp_path / "r.sqlite")
    writer = Writer(store)
    cfg = config()
    writer.write(cfg)
    writer.write(with_real_servers(cfg, {("svc0", "rs0"): {"weight": 3}}))
    assert rows(store)[2][0] == 1
    with pytest.raises(StoreError, match="FOREIGN KEY"), store._connect() as db:
        db.execute("DELETE FROM revisions WHERE id = 1")


def test_rewriting_a_base_makes_its_deltas_whole_first(tmp_path) -> None:
    store = RevisionStore(tmp_path / "r.sqlite")
    writer = Writer(store)
    cfg = config()
    writer.write(cfg)
    writer.write(with_real_servers(cfg, {("svc0", "rs0"): {"weight": 3}}))
    other = config(services=2).model_dump_json()
    store.rewrite(1, other, "", None)
    assert store.get(1).config_json == other
    assert store.get(2).config_json == writer.written[2] and rows(store)[2] == (None, 0)


# --- a store of schema 1 ---------------------------------------------------------------------------------------


def test_a_store_of_schema_1_reads_as_before_and_takes_deltas(tmp_path) -> None:
    """tests/data/revisions-schema1.sqlite was made by pacslb before deltas (tests/data/README.md)."""
    path = tmp_path / "revisions.sqlite"
    shutil.copy(SCHEMA1, path)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
        old = {r[0]: (r[1], r[2]) for r in db.execute("SELECT id, config_json, digest FROM revisions")}
    store = RevisionStore(path)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    for rev_id, (text, digest) in old.items():
        rev = store.get(rev_id)
        assert rev.config_json == text and rev.digest == digest
    assert store.current().id == 2 and store.get(3).status is RevisionStatus.FAILED
    assert store.retention()["keep"] == 12  # read from the whole JSON: schema 1 rows have no keep column value
    loaded = validate_data(store.current().config_data)
    assert loaded.ok
    writer = Writer(store)
    writer.written.update({k: v[0] for k, v in old.items()})
    cfg = loaded.config
    with mock.patch.object(deltas, "DELTA_MAX_SHARE", 0.9):  # two services: a delta is half the whole
        for n in range(15):
            cfg = with_real_servers(cfg, {("web", "rs2"): {"weight": n + 1}})
            writer.write(cfg)
    assert rows(store)[5][0] == 4  # deltas on top of the old rows
    assert 1 not in store.ids() and len(store.ids()) >= 12  # pruned as settings.revisions.keep: 12 says
    assert_every_revision_reads_back(store, writer)
