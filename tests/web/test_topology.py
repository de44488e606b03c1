"""The dashboard's topology (pacslb.web.topology): True PACS as 6 VIPs with their 29 backend-only services nested,
and what draining or halting the last server of a service does."""

from __future__ import annotations

import pytest

from pacslb.controller.status import (
    ControllerStatus,
    EngineStatus,
    RealServerStatus,
    ServerState,
    ServiceState,
    VirtualServiceStatus,
    build_status,
)
from pacslb.model import load_text
from pacslb.templates.true_pacs import SERVICES, render_true_pacs
from pacslb.web.topology import UNREACHED, confirmation, groups, last_server_warning, parents, service_states


@pytest.fixture(scope="module")
def true_pacs():
    loaded = load_text(render_true_pacs())
    assert loaded.ok, loaded.problems
    status = build_status(loaded.config, [], EngineStatus(running=True), ControllerStatus(state_dir="/x"))
    return loaded.config, status.virtual_services


def test_true_pacs_is_six_vips_with_their_backend_only_services_nested(true_pacs):
    config, services = true_pacs
    found = groups(config, services)
    vips = [s.name for s in SERVICES if s.mode != "backend-only"]
    assert [g.name for g in found] == vips and len(vips) == 6
    nested = [vs.name for g in found for vs in g.members[1:]]
    assert len(nested) == 29 and len(set(nested)) == 29
    for spec in SERVICES:
        if spec.parent:
            group = next(g for g in found if g.name == spec.parent)
            assert spec.name in [vs.name for vs in group.members], spec.name
    every = [vs.name for g in found for vs in g.members]
    assert sorted(every) == sorted(s.name for s in SERVICES)  # each service on the page exactly once
    wfc_443 = next(g for g in found if g.name == "WFC_443")
    assert any(r.rule == "default" and r.condition == "anything no rule takes" for r in wfc_443.routes)
    assert any(r.condition.startswith("path_begins /") for r in wfc_443.routes)
    assert parents(found)["WFC_inference_443"] == ["WFC_443"]


def test_counts_per_group_and_unknown_states_open_nothing(true_pacs):
    config, services = true_pacs
    found = groups(config, services)  # no engine rows: every state unknown
    total = sum(len(vs.real_servers) for vs in services)
    assert sum(sum(g.counts.values()) for g in found) == total
    assert all(not g.problem for g in found) and all(g.states in ("unknown", "") for g in found)


def rs(name: str, state: ServerState, backup: bool = False) -> RealServerStatus:
    return RealServerStatus(name=name, address="192.0.2.1:80", state=state, configured_state="online", backup=backup)


def service(*servers: RealServerStatus, fallback: RealServerStatus | None = None) -> VirtualServiceStatus:
    return VirtualServiceStatus(name="web", mode="layer7-http", state=ServiceState.UP, real_servers=list(servers),
                                fallback=fallback)  # fmt: skip


def test_the_last_up_server_says_what_its_service_will_do():
    two = service(rs("a", ServerState.UP), rs("b", ServerState.UP))
    assert last_server_warning(two, "a") is None
    one = service(rs("a", ServerState.UP), rs("b", ServerState.DOWN), rs("c", ServerState.MAINT))
    assert last_server_warning(one, "a") == "service web will have no server: new requests get 503 (Service Unavailable)."
    assert last_server_warning(one, "b") is None  # not serving anyway
    via = last_server_warning(one, "a", ["WFC_443"])
    assert via == "service web will have no server: new requests that WFC_443 sends here get 503 (Service Unavailable)."
    fallback = rs("fallback", ServerState.UP, backup=True).model_copy(update={"address": "192.0.2.9:80"})
    assert "go to the fallback server 192.0.2.9:80" in last_server_warning(
        service(rs("a", ServerState.UP), fallback=fallback), "a"
    )
    page = fallback.model_copy(update={"address": "maintenance page (HTTP 503)"})
    assert "get the maintenance page (HTTP 503)" in last_server_warning(
        service(rs("a", ServerState.NO_CHECK), fallback=page), "a"
    )
    backed = service(rs("a", ServerState.UP), rs("z", ServerState.UP, backup=True))
    assert last_server_warning(backed, "a") == "a is the last active server of web: new requests go to its backup server(s) z."
    # Layer 4: nftables reports no states; the configuration alone says what stays online
    unobserved = service(
        rs("a", ServerState.UNKNOWN), rs("b", ServerState.UNKNOWN).model_copy(update={"configured_state": "halt"})
    )
    assert last_server_warning(unobserved, "a").startswith("a is the last real server of web that the configuration keeps online")
    assert last_server_warning(unobserved, "b") is None
    assert last_server_warning(service(rs("a", ServerState.UNKNOWN), rs("b", ServerState.UNKNOWN)), "a") is None


def test_the_buttons_question():
    one = service(rs("a", ServerState.UP))
    assert confirmation(one, "a", "drain").startswith("Drain a of web? It takes no new sessions")
    assert "Warning: service web will have no server" in confirmation(one, "a", "halt")
    assert "Warning" not in confirmation(service(rs("a", ServerState.UP), rs("b", ServerState.UP)), "a", "halt")


def test_service_states_and_the_unreached_group(true_pacs):
    down = service(rs("a", ServerState.DOWN), rs("b", ServerState.DRAIN)).model_copy(update={"state": ServiceState.DOWN})
    assert service_states(down) == "down drain"
    config, services = true_pacs  # the model refuses an unreached backend-only service; the dashboard still shows one
    lonely = next(vs for vs in config.virtual_services if vs.name == "WFC_inference_443")
    found = groups(config.model_copy(update={"virtual_services": [lonely]}), services)
    assert [(g.name, [vs.name for vs in g.members]) for g in found] == [(UNREACHED, ["WFC_inference_443"])]
