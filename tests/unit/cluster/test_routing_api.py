"""The controller API's cluster routes (cluster/routing_api.py) on the ASGI app, with a stand-in routing."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from pacslb.cluster.routing_api import routing_router


class Stand:
    def __init__(self, configured: bool) -> None:
        self.configured = configured
        self.drained = False

    def status(self) -> dict:
        return {"configured": self.configured, "drained": self.drained, "announced": [] if self.drained else ["192.0.2.10"]}

    async def drain(self, drained: bool) -> dict:
        self.drained = drained
        return self.status()


def client(stand: Stand) -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(routing_router(stand.status, stand.drain))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://controller")


@pytest.mark.asyncio
async def test_drain_and_return_answer_the_routing_status() -> None:
    stand = Stand(configured=True)
    async with client(stand) as api:
        answer = await api.post("/api/v1/cluster/drain", json={"drained": True})
        assert answer.status_code == 200 and answer.json()["drained"] is True and answer.json()["announced"] == []
        assert (await api.get("/api/v1/cluster/routing")).json()["drained"] is True
        answer = await api.post("/api/v1/cluster/drain", json={"drained": False})
        assert answer.json()["announced"] == ["192.0.2.10"]


@pytest.mark.asyncio
async def test_a_bad_body_names_the_field_and_a_node_outside_a_cluster_is_refused() -> None:
    stand = Stand(configured=True)
    async with client(stand) as api:
        for body in ({"drained": "maybe"}, {}, {"drained": True, "node": "lb2"}):
            answer = await api.post("/api/v1/cluster/drain", json=body)
            assert answer.status_code == 422 and ("drained" in answer.text or "node" in answer.text), answer.text
        assert stand.drained is False
    alone = Stand(configured=False)
    async with client(alone) as api:
        answer = await api.post("/api/v1/cluster/drain", json={"drained": True})
        assert answer.status_code == 409 and "not in a cluster" in answer.json()["detail"] and alone.drained is False
