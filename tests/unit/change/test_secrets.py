"""Secrets through the change front door: revisions.sqlite never holds them (its bytes are read), the secret
store (0600) does, by revision; a placeholder sent back keeps the secret; a rollback and a restart run the
secret their revision ran with; diffs say "changed" without values; older stores are cleaned once; HA sync
carries the value."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest

from pacslb.change.result import Outcome
from pacslb.change.secrets_apart import META_SECRETS_APART
from pacslb.change.service import Changes, Origin, Running
from pacslb.engines.contract import Prepared
from pacslb.ha import peer_link
from pacslb.model import Config, load_text, validate_data
from pacslb.model.secrets import revealed_dump
from pacslb.model.types import SECRET_PLACEHOLDER
from pacslb.paths import StatePaths
from pacslb.store.history import revision_diff

OLD = "first-Secret-4711"
NEW = "second-Secret-0815"
PATH = "virtual_services[RMQ].health_check.password"

TEXT = """version: 1
virtual_services:
  - name: RMQ
    mode: layer7-tcp
    listen: [{address: 127.0.0.1, port: 5672}]
    health_check: {type: amqp, username: pacs, password: "%s"}
    real_servers:
      - {name: mq1, address: 127.0.0.2, port: 5672}
      - {name: mq2, address: 127.0.0.3, port: 5672}
"""


class Engine:
    """An engine that runs the configuration's dump (secrets as the placeholder, as HAProxy's file has none)."""

    name = "haproxy"

    def __init__(self) -> None:
        self.runs = ""

    def wanted(self, config: Config) -> bool:
        return True

    def plan(self, old: Config, new: Config, base_dir: Path) -> Prepared:
        text = new.model_dump_json()
        return Prepared(self.name, text != self.runs, hashlib.sha256(text.encode()).hexdigest(), data=text)

    async def check(self, prepared: Prepared) -> None:
        pass

    async def commit(self, prepared: Prepared) -> None:
        self.runs = prepared.data

    async def undo(self, prepared: Prepared) -> None:
        pass

    def discard(self, prepared: Prepared) -> None:
        pass

    def applied_digest(self) -> str | None:
        return hashlib.sha256(self.runs.encode()).hexdigest() if self.runs else None


def password(changes: Changes) -> str:
    return changes.config.service("RMQ").health_check.password.reveal()


def stored_bytes(paths: StatePaths) -> bytes:
    """Every byte of revisions.sqlite, its write-ahead log and shared memory included."""
    files = [paths.revisions_db, *(paths.revisions_db.with_name(paths.revisions_db.name + s) for s in ("-wal", "-shm"))]
    return b"".join(f.read_bytes() for f in files if f.exists())


@pytest.fixture
def start(tmp_path):
    """start(text=None) -> Changes: a controller's startup on the file (written first when given)."""
    config_file = tmp_path / "pacslb.yaml"
    config_file.write_text(TEXT % OLD)

    def run(text: str | None = None) -> Changes:
        if text is not None:
            config_file.write_text(text)
        loaded = load_text(config_file.read_text())
        assert loaded.ok, loaded.problems
        changes = Changes(StatePaths(tmp_path / "state"), Running(loaded.config, tmp_path, config_file), [Engine()],
                          asyncio.Lock())  # fmt: skip
        changes.started(changes.startup(config_file.read_text(), engines_running=False))
        return changes

    return run


async def test_revisions_hold_no_secret_the_secret_store_does(start):
    changes = start()
    paths = changes.paths
    assert password(changes) == OLD
    result = await changes.apply(text=TEXT % NEW, origin=Origin("ann", "api"))
    assert result.outcome is Outcome.APPLIED, result.message
    assert password(changes) == NEW
    raw = stored_bytes(paths)
    assert b"RMQ" in raw and OLD.encode() not in raw and NEW.encode() not in raw
    assert SECRET_PLACEHOLDER in changes.store.current().config_yaml
    assert paths.secrets_db.stat().st_mode & 0o777 == 0o600
    assert changes.secrets.get(1) == {PATH: OLD} and changes.secrets.get(2) == {PATH: NEW}
    assert OLD not in paths.config.read_text() and NEW not in paths.config.read_text()  # the state's copy
    answer = json.dumps(result.as_dict())
    assert NEW not in answer and OLD not in answer


async def test_a_round_trip_of_what_a_get_answered_keeps_the_secret(start):
    changes = start()
    shown = changes.config.model_dump(mode="json")  # what GET /config answers
    assert shown["virtual_services"][0]["health_check"]["password"] == SECRET_PLACEHOLDER
    same = await changes.apply(data=shown)
    assert same.outcome is Outcome.UNCHANGED, same.message
    shown["virtual_services"][0]["real_servers"][1]["weight"] = 7  # an edit of something else
    edited = await changes.apply(data=shown)
    assert edited.outcome is Outcome.APPLIED, edited.message
    assert password(changes) == OLD and changes.secrets.get(edited.revision.id) == {PATH: OLD}

    def drain(data: dict) -> None:  # the API's and WebUI's edits work on the running data the same way
        data["virtual_services"][0]["real_servers"][0]["state"] = "drain"

    assert (await changes.apply(edit=drain)).outcome is Outcome.APPLIED
    assert password(changes) == OLD


async def test_a_placeholder_with_no_stored_secret_is_refused_naming_the_field(start):
    changes = start()
    renamed = (TEXT % SECRET_PLACEHOLDER).replace("RMQ", "MQ")
    result = await changes.apply(text=renamed)
    assert result.outcome is Outcome.INVALID
    (problem,) = result.problems
    assert problem.path == "virtual_services[MQ].health_check.password" and "write the secret itself" in problem.message
    assert changes.store.current_id() == 1 and password(changes) == OLD


async def test_diffs_say_a_secret_changed_without_its_value(start):
    changes = start()
    result = await changes.apply(text=TEXT % NEW)
    assert [c["text"] for c in result.plan.as_dict()["changes"]] == [f"{PATH}: changed (a secret: its value is not shown)"]
    found = revision_diff(changes.store, 1, 2, changes.secret_store())
    (change,) = found.changes
    assert change.secret and change.path == PATH
    text = json.dumps(found.as_dict())
    assert OLD not in text and NEW not in text
    assert revision_diff(changes.store, 1, 2).changes == []  # a reader without the secret store sees no change


async def test_a_rollback_restores_the_secret_that_revision_ran_with(start):
    changes = start()
    await changes.apply(text=TEXT % NEW)
    assert password(changes) == NEW
    result = await changes.rollback(1)
    assert result.outcome is Outcome.APPLIED, result.message
    assert password(changes) == OLD and changes.secrets.get(result.revision.id) == {PATH: OLD}
    assert OLD.encode() not in stored_bytes(changes.paths)


async def test_a_restart_runs_the_current_revision_with_its_secret(start):
    changes = start()
    await changes.apply(text=TEXT % NEW)  # through the API: the file still says OLD
    again = start()  # the file has not changed since it was read: the current revision runs
    assert again.store.current_id() == 2 and password(again) == NEW
    edited = start(TEXT % "third-Secret")  # an edited file wins, as a new revision with its secret
    assert edited.store.current_id() == 3 and password(edited) == "third-Secret"
    assert edited.secrets.get(3) == {PATH: "third-Secret"} and b"third-Secret" not in stored_bytes(edited.paths)
    placeholder = start(TEXT % SECRET_PLACEHOLDER)  # a file written from a GET keeps the secret that ran last
    assert password(placeholder) == "third-Secret"


async def test_revisions_of_an_older_release_are_cleaned_once(start, tmp_path):
    changes = start()
    store = changes.store
    # an older release stored the password in clear, in the configuration, its YAML and its plan
    clear = load_text(TEXT % NEW).config
    plan = {"method": "none", "changes": [{"path": PATH, "kind": "changed", "old": OLD, "new": NEW,
                                           "text": f"{PATH}: {OLD} -> {NEW}"}],
            "text": ["changes:", f"  {PATH}: {OLD} -> {NEW}", "HAProxy: nothing to change"]}  # fmt: skip
    old = store.add(revealed_dump(clear), TEXT % NEW, author="a", message="old", kind="apply", parent=1, plan=plan)
    store.mark_applied(old.id)
    store.set_meta(META_SECRETS_APART, False)
    assert NEW.encode() in stored_bytes(changes.paths)
    again = start()
    assert NEW.encode() not in stored_bytes(again.paths) and OLD.encode() not in stored_bytes(again.paths)
    assert again.secrets.get(old.id) == {PATH: NEW}
    cleaned = again.store.get(old.id)
    assert cleaned.plan["text"][1] == f"  {PATH}: changed (a secret: its value is not shown)"
    assert cleaned.plan["text"][2] == "HAProxy: nothing to change"
    assert password(again) == NEW  # the file did not change: the current revision runs, its secret put back
    assert (await again.rollback(1)).outcome is Outcome.APPLIED and password(again) == OLD


async def test_ha_sync_carries_the_secret_to_the_peer(start, tmp_path):
    primary = start()
    await primary.apply(text=TEXT % NEW)
    pushed = primary.revision_config(primary.store.current())  # what the HA pair pushes
    body = peer_link.synced_data(pushed)
    assert body["virtual_services"][0]["health_check"]["password"] == NEW
    secondary_state = tmp_path / "secondary"
    own = load_text(TEXT % OLD).config
    secondary = Changes(StatePaths(secondary_state), Running(own, tmp_path, tmp_path / "pacslb.yaml"), [Engine()],
                        asyncio.Lock())  # fmt: skip
    secondary.started(secondary.startup(TEXT % OLD, engines_running=False))
    merged = peer_link.merge_local(json.loads(json.dumps(body)), own)
    assert validate_data(merged).ok
    result = await secondary.apply(data=merged, origin=Origin("primary", "ha"), kind="sync")
    assert result.outcome is Outcome.APPLIED, result.message
    assert password(secondary) == NEW
    assert peer_link.synced_digest(secondary.config) == peer_link.synced_digest(primary.config)
    assert NEW.encode() not in stored_bytes(secondary.paths)


async def test_the_secrets_of_pruned_revisions_go_with_them(start):
    changes = start(TEXT % OLD + "settings: {revisions: {keep: 10}}\n")
    for n in range(12):
        result = await changes.apply(text=TEXT % f"secret-{n}" + "settings: {revisions: {keep: 10}}\n")
        assert result.outcome is Outcome.APPLIED, result.message
    kept = changes.store.ids()
    assert len(kept) >= 10 and 1 not in kept  # beyond 10: the bases the kept deltas read through (store/pruning.py)
    assert changes.secrets.get(1) == {} and changes.secrets.get(kept[-1]) == {PATH: "secret-11"}
    assert all(changes.secrets.get(i) for i in kept)
