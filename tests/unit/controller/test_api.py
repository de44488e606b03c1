"""The controller API, in-process on the ASGI app with a stand-in controller."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from pacslb.controller.api import create_app
from pacslb.controller.status import ApplianceStatus, EngineStatus, ServiceState, VirtualServiceStatus


class StandIn:
    def __init__(self, healthy: bool = True) -> None:
        self.ok = healthy
        self.stops: list[str] = []

    def status(self) -> ApplianceStatus:
        return ApplianceStatus(
            controller=None,
            engine=EngineStatus(running=True, master_pid=5),
            virtual_services=[VirtualServiceStatus(name="web", mode="layer7-http", state=ServiceState.UP)],
        )

    def healthy(self) -> tuple[bool, str]:
        return self.ok, "HAProxy serves" if self.ok else "HAProxy is not running"

    def request_stop(self, reason: str) -> None:
        self.stops.append(reason)


def client(controller) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(controller)), base_url="http://pacslb")


async def test_status():
    async with client(StandIn()) as c:
        response = await c.get("/api/v1/status")
    assert response.status_code == 200
    body = response.json()
    assert body["engine"]["master_pid"] == 5
    assert body["virtual_services"][0] == {
        "name": "web",
        "mode": "layer7-http",
        "listen": [],
        "state": "UP",
        "note": None,
        "sessions": {"current": 0, "total": 0},
        "real_servers": [],
        "fallback": None,
    }


@pytest.mark.parametrize("healthy, code", [(True, 200), (False, 503)])
async def test_health(healthy, code):
    async with client(StandIn(healthy)) as c:
        response = await c.get("/api/v1/health")
    assert response.status_code == code
    assert response.json()["ok"] is healthy


async def test_stop_answers_then_stops():
    controller = StandIn()
    async with client(controller) as c:
        response = await c.post("/api/v1/stop")
    assert response.status_code == 202 and response.json()["stopping"] is True
    await asyncio.sleep(0.2)
    assert controller.stops == ["asked through the API"]


async def test_stop_needs_post():
    async with client(StandIn()) as c:
        assert (await c.get("/api/v1/stop")).status_code == 405
