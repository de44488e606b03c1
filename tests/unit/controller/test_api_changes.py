"""The API of changes, in-process on the ASGI app with a stand-in change manager and a real store."""

from __future__ import annotations

import httpx
import pytest

from pacslb.change.result import ChangeResult, Outcome
from pacslb.controller.api import create_app
from pacslb.model import Problem, load_text
from pacslb.paths import StatePaths
from pacslb.store import RevisionStore

YAML = "version: 1\nvirtual_services: []\n"


class Changes:
    def __init__(self, store: RevisionStore, outcome: Outcome = Outcome.APPLIED) -> None:
        self.store = store
        self.paths = StatePaths(store.path.parent)  # the controller API's WAF routes read events under it
        self.outcome = outcome
        self.calls: list[tuple] = []

    def _result(self) -> ChangeResult:
        problems = [Problem("virtual_services[web].mode", "'x' is not allowed")] if self.outcome is Outcome.INVALID else []
        return ChangeResult(self.outcome, f"it is {self.outcome.value}", problems=problems)

    async def apply(self, **kwargs) -> ChangeResult:
        self.calls.append(("apply", kwargs))
        return self._result()

    async def set_real_server(self, service, real_server, **kwargs) -> ChangeResult:
        self.calls.append(("set", service, real_server, kwargs))
        return self._result()

    async def rollback(self, rev_id, **kwargs) -> ChangeResult:
        self.calls.append(("rollback", rev_id, kwargs))
        return self._result()

    def secret_store(self):
        return None  # no secrets stored: diffs compare the revisions as stored


class Controller:
    def __init__(self, changes: Changes) -> None:
        self.changes = changes

    def status(self):  # pragma: no cover - not used here
        raise NotImplementedError

    def healthy(self):  # pragma: no cover
        return True, "ok"

    def request_stop(self, reason: str) -> None:  # pragma: no cover
        pass


@pytest.fixture
def store(tmp_path):
    return RevisionStore(tmp_path / "revisions.sqlite")


def client(changes: Changes) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(Controller(changes), changes)), base_url="http://pacslb"
    )


@pytest.mark.parametrize(
    "outcome, status", [(Outcome.APPLIED, 200), (Outcome.DRY_RUN, 200), (Outcome.INVALID, 422), (Outcome.REFUSED, 409)]
)
async def test_apply_status_follows_the_outcome(store, outcome, status):
    changes = Changes(store, outcome)
    async with client(changes) as c:
        response = await c.post("/api/v1/apply", json={"yaml": YAML, "dry_run": True, "author": "bob", "message": "m"})
    assert response.status_code == status
    body = response.json()
    assert body["outcome"] == outcome.value and body["message"] == f"it is {outcome.value}"
    if outcome is Outcome.INVALID:
        assert body["problems"] == [{"path": "virtual_services[web].mode", "message": "'x' is not allowed", "severity": "error"}]
    (call,) = changes.calls
    assert (
        call[1]["text"] == YAML
        and call[1]["dry_run"] is True
        and call[1]["origin"].author == "bob"
        and call[1]["origin"].via == "cli"
    )


async def test_apply_needs_a_source_and_validates_json_over_text(store):
    changes = Changes(store)
    async with client(changes) as c:
        assert (await c.post("/api/v1/apply", json={})).status_code == 422
        assert (await c.post("/api/v1/apply", json={"yaml": YAML, "config": {"version": 1}})).status_code == 200
        assert (await c.post("/api/v1/apply", json={"config": {"version": 1}})).status_code == 200
    both, only_json = changes.calls
    assert both[1]["data"] == {"version": 1} and both[1]["yaml_text"] == YAML and "text" not in both[1]
    assert only_json[1]["data"] == {"version": 1} and only_json[1]["yaml_text"] is None


async def test_real_server_state_and_weight(store):
    changes = Changes(store)
    async with client(changes) as c:
        r = await c.post("/api/v1/virtual-services/web/real-servers/rs1/state", json={"state": "drain", "all": True})
        assert r.status_code == 200
        assert (await c.post("/api/v1/virtual-services/web/real-servers/rs1/state", json={"state": "sleep"})).status_code == 422
        assert (await c.post("/api/v1/virtual-services/web/real-servers/rs1/weight", json={"weight": 300})).status_code == 422
        r = await c.post("/api/v1/virtual-services/web/real-servers/rs1/weight", json={"weight": 0, "message": "why"})
        assert r.status_code == 200
    state_call, weight_call = changes.calls
    assert state_call[:3] == ("set", "web", "rs1") and state_call[3]["every_service"] is True
    assert state_call[3]["state"].value == "drain"
    assert weight_call[3]["weight"] == 0 and weight_call[3]["message"] == "why"


async def test_not_found_is_404(store):
    async with client(Changes(store, Outcome.NOT_FOUND)) as c:
        r = await c.post("/api/v1/revisions/7/rollback", json={})
    assert r.status_code == 404 and r.json()["outcome"] == "not-found"


async def test_revisions_and_diff_read_the_store(store):
    for weight in (100, 50):
        text = YAML.replace("[]", f"[{{name: w, mode: layer7-http, listen: [{{address: 127.0.0.1, port: 80}}], "
                                  f"real_servers: [{{name: a, address: 127.0.0.2, port: 80, weight: {weight}}}]}}]")  # fmt: skip
        loaded = load_text(text)
        assert loaded.ok, loaded.problems
        rev = store.add(loaded.config.model_dump(mode="json"), text, author="a", message=str(weight), kind="apply", parent=None)
        store.mark_applied(rev.id)
    async with client(Changes(store)) as c:
        listed = (await c.get("/api/v1/revisions")).json()
        one = await c.get("/api/v1/revisions/1")
        missing = await c.get("/api/v1/revisions/9")
        last = (await c.get("/api/v1/diff")).json()
        bad = await c.get("/api/v1/diff", params={"from": 9})
    assert listed["current"] == 2 and [r["id"] for r in listed["revisions"]] == [2, 1]
    assert "config" not in listed["revisions"][0]
    assert one.status_code == 200 and one.json()["config"]["virtual_services"][0]["name"] == "w"
    assert missing.status_code == 404
    assert [c["text"] for c in last["changes"]] == ["virtual_services[w].real_servers[a].weight: 100 -> 50"]
    assert bad.status_code == 404
