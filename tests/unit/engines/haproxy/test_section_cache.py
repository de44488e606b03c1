"""The render cache (engines/haproxy/section_cache.py): a render that reuses sections gives the bytes of a fresh one."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pacslb.engines.haproxy.render import HAProxyEnv, render
from pacslb.engines.haproxy.section_cache import DEFAULT_LIMIT, SectionCache
from pacslb.model import Config, load_file, validate_data
from pacslb.model.limits import MAX_VIRTUAL_SERVICES

ENV = HAProxyEnv(state_dir=Path("/var/lib/pacslb"), base_dir=Path("/etc/pacslb"), cpu_count=2)

# A gateway whose rules reach two backend-only services (their mode, stick table family and check host come
# from it), plain HTTP and TCP services, and a Layer 4 one (a comment in haproxy.cfg).
BASE: dict[str, Any] = {
    "version": 1,
    "settings": {"retries": 2},
    "virtual_services": [
        {"name": "gateway", "mode": "layer7-http", "listen": [{"address": "192.0.2.10", "port": 80}],
         "rules": [{"name": "images", "match": {"path_begins": ["/images"]}, "use_service": "images_be"}],
         "default_service": "viewer_be"},
        {"name": "images_be", "mode": "backend-only", "persistence": {"type": "source-ip"},
         "health_check": {"type": "http", "path": "/health"},
         "real_servers": [{"name": "img1", "address": "192.0.2.21", "port": 80},
                          {"name": "img2", "address": "192.0.2.22", "port": 80}]},
        {"name": "viewer_be", "mode": "backend-only",
         "real_servers": [{"name": "v1", "address": "192.0.2.31", "port": 8080}]},
        {"name": "wado", "mode": "layer7-http", "listen": [{"address": "192.0.2.11", "port": 8080}],
         "real_servers": [{"name": "w1", "address": "192.0.2.41", "port": 8080},
                          {"name": "w2", "address": "192.0.2.42", "port": 8080, "weight": 50}]},
        {"name": "dicom", "mode": "layer7-tcp", "listen": [{"address": "192.0.2.12", "port": 104}],
         "real_servers": [{"name": "d1", "address": "192.0.2.51", "port": 104}]},
        {"name": "hl7", "mode": "layer4-nat", "listen": [{"address": "192.0.2.13", "port": 2575}],
         "real_servers": [{"name": "h1", "address": "192.0.2.61", "port": 2575}]},
    ],
}  # fmt: skip


def _config(data: dict[str, Any]) -> Config | None:
    loaded = validate_data(copy.deepcopy(data))
    return loaded.config if loaded.ok else None


def _servers(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [rs for vs in data["virtual_services"] for rs in vs.get("real_servers", [])]


# One change of the plain data: (what, index, value). Indexes pick among the services or real servers present.
CHANGES = st.one_of(
    st.tuples(st.just("weight"), st.integers(0, 50), st.integers(0, 256)),
    st.tuples(st.just("state"), st.integers(0, 50), st.sampled_from(["online", "drain", "halt"])),
    st.tuples(st.just("port"), st.integers(0, 50), st.integers(1, 65535)),
    st.tuples(st.just("add server"), st.integers(0, 50), st.integers(1, 250)),
    st.tuples(st.just("remove server"), st.integers(0, 50), st.just(0)),
    st.tuples(st.just("service timeout"), st.integers(0, 50), st.sampled_from([None, "5s", "10m"])),
    st.tuples(st.just("gateway listener"), st.just(0), st.sampled_from(["192.0.2.10", "2001:db8::10", "192.0.2.19"])),
    st.tuples(st.just("retries"), st.just(0), st.integers(0, 3)),
    st.tuples(st.just("server timeout"), st.just(0), st.sampled_from(["30s", "1h"])),
    st.tuples(st.just("log requests"), st.just(0), st.sampled_from(["all", "problems"])),
    st.tuples(st.just("agent port"), st.just(0), st.integers(300, 400)),
    st.tuples(st.just("add service"), st.integers(0, 50), st.integers(1, 250)),
    st.tuples(st.just("remove service"), st.integers(3, 50), st.just(0)),
)


def _change(data: dict[str, Any], change: tuple[str, int, Any]) -> None:
    what, index, value = change
    services = data["virtual_services"]
    servers = _servers(data)
    settings_ = data.setdefault("settings", {})
    if what in ("weight", "state", "port") and servers:
        servers[index % len(servers)][what] = value
    elif what == "add server":
        vs = services[index % len(services)]
        vs.setdefault("real_servers", []).append({"name": f"rs{value}", "address": f"192.0.2.{value}", "port": 80})
    elif what == "remove server":
        owners = [vs for vs in services if vs.get("real_servers")]
        if owners:
            owners[index % len(owners)]["real_servers"].pop()
    elif what == "service timeout":
        vs = services[index % len(services)]
        vs["timeouts"] = {"server": value} if value else {}
    elif what == "gateway listener":
        services[0]["listen"] = [{"address": value, "port": 80}]
    elif what == "retries":
        settings_["retries"] = value
    elif what == "server timeout":
        settings_.setdefault("timeouts", {})["server"] = value
    elif what == "log requests":
        settings_.setdefault("log", {})["requests"] = value
    elif what == "agent port":
        settings_.setdefault("health", {})["agent_port"] = value
    elif what == "add service":
        services.append({"name": f"svc{value}", "mode": "layer7-http", "listen": [{"address": "192.0.2.200", "port": 1000 + value}],
                         "real_servers": [{"name": "a", "address": f"198.51.100.{value}", "port": 80}]})  # fmt: skip
    elif what == "remove service" and len(services) > 3:
        del services[3 + index % (len(services) - 3)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(CHANGES, min_size=1, max_size=12))
def test_a_render_that_reuses_sections_equals_a_fresh_render_after_random_changes(changes) -> None:
    """After every change (one real server, one service, one global setting), the render with the cache the
    earlier renders filled is byte for byte the render without a cache."""
    cache = SectionCache()
    data = copy.deepcopy(BASE)
    config = _config(data)
    assert config is not None
    assert render(config, ENV, cache) == render(config, ENV)
    for change in changes:
        candidate = copy.deepcopy(data)
        _change(candidate, change)
        config = _config(candidate)
        if config is None:  # a change the model refuses (two real servers on one port, ...): keep the data
            continue
        data = candidate
        assert render(config, ENV, cache) == render(config, ENV), change


def test_unchanged_services_are_reused_and_a_changed_one_is_rendered_again() -> None:
    cache = SectionCache()
    config = _config(BASE)
    render(config, ENV, cache)
    assert (cache.hits, cache.misses) == (0, 6)
    render(config, ENV, cache)
    assert (cache.hits, cache.misses) == (6, 0)
    data = copy.deepcopy(BASE)
    data["virtual_services"][3]["real_servers"][0]["weight"] = 7
    changed = _config(data)
    assert render(changed, ENV, cache) == render(changed, ENV)
    assert (cache.hits, cache.misses) == (5, 1)


def test_a_service_reached_by_a_changed_service_is_rendered_again() -> None:
    """A backend-only service's stick table follows the listeners of the services that reach it."""
    cache = SectionCache()
    render(_config(BASE), ENV, cache)
    data = copy.deepcopy(BASE)
    data["virtual_services"][0]["listen"] = [{"address": "2001:db8::10", "port": 80}]
    changed = _config(data)
    text = render(changed, ENV, cache)
    assert text == render(changed, ENV)
    assert "type ipv6" in text
    assert (cache.hits, cache.misses) == (3, 3)  # the gateway and the two services it reaches


@pytest.mark.parametrize(
    ("setting", "rendered_differently"),
    [({"retries": 0}, True), ({"timeouts": {"server": "2h"}}, True), ({"log": {"requests": "all"}}, True),
     ({"health": {"agent_port": 399}}, False)],  # no appliance check here: the agent port is in no line
    ids=["retries", "timeouts", "log", "agent-port"],
)  # fmt: skip
def test_a_change_of_a_global_setting_invalidates_the_cache(setting, rendered_differently) -> None:
    cache = SectionCache()
    before = render(_config(BASE), ENV, cache)
    data = copy.deepcopy(BASE)
    data["settings"].update(setting)
    changed = _config(data)
    text = render(changed, ENV, cache)
    assert text == render(changed, ENV)
    assert (text != before) is rendered_differently
    assert cache.hits == 0


def test_another_environment_invalidates_the_cache() -> None:
    cache = SectionCache()
    config = _config(BASE)
    render(config, ENV, cache)
    other = HAProxyEnv(state_dir=Path("/srv/other"), base_dir=Path("/etc/other"), cpu_count=2, prometheus=True)
    assert render(config, other, cache) == render(config, other)
    assert cache.hits == 0


def test_the_cache_keeps_at_most_its_limit_of_services() -> None:
    cache = SectionCache(limit=2)
    config = _config(BASE)
    assert render(config, ENV, cache) == render(config, ENV)
    assert len(cache) == 2
    assert render(config, ENV, cache) == render(config, ENV)
    assert (cache.hits, cache.misses) == (2, 4)
    empty = SectionCache(limit=0)
    assert render(config, ENV, empty) == render(config, ENV) and len(empty) == 0
    assert DEFAULT_LIMIT == MAX_VIRTUAL_SERVICES  # a whole configuration of the largest size fits
    with pytest.raises(ValueError, match="limit must be 0 or more"):
        SectionCache(limit=-1)
    cache.clear()
    assert len(cache) == 0


def test_golden_files_are_rendered_alike_with_the_cache(golden_case: Path, golden_env: HAProxyEnv) -> None:
    """Every golden case, rendered into an empty cache and again from it, is its haproxy.cfg byte for byte
    (a case with a WAF policy is rendered whole: the cache is left out)."""
    config = load_file(golden_case / "config.yaml").config
    assert config is not None
    expected = (golden_case / "haproxy.cfg").read_text()
    cache = SectionCache()
    assert render(config, golden_env, cache) == expected
    assert render(config, golden_env, cache) == expected
