"""Validation that reuses unchanged services (model/reuse.py) and the quick pass of the shape check (model/limits.py):
the same configurations and the same problems as without them."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pacslb.model import validate_data
from pacslb.model.client_address import _normal_address
from pacslb.model.limits import MAX_DEPTH, MAX_VALUES, MAX_VIRTUAL_SERVICES, _shape_walk, shape_problems
from pacslb.model.resolvers import _is_ip
from pacslb.model.reuse import DEFAULT_LIMIT, ValidatedServices, service_key
from pacslb.model.types import MAX_KNOWN_IP_TEXTS, MAX_REMEMBERED_TEXT, _ip_text, _ip_text_known


def _service(i: int) -> dict[str, Any]:
    return {"name": f"svc{i}", "mode": "layer7-http", "listen": [{"address": "192.0.2.10", "port": 8000 + i}],
            "real_servers": [{"name": f"rs{j}", "address": f"192.0.2.{100 + j}", "port": 9000 + i} for j in range(3)]}  # fmt: skip


BASE: dict[str, Any] = {"version": 1, "virtual_services": [_service(i) for i in range(6)]}

# One change of the plain data, valid or not: (field, service index, value). Values of the wrong type, unknown
# keys and clashes are on purpose: their problems must be the same with and without reuse.
VALUES = st.one_of(st.integers(-1, 300), st.booleans(), st.floats(allow_nan=False), st.text(max_size=6), st.none())
CHANGES = st.one_of(
    st.tuples(st.just("weight"), st.integers(0, 20), VALUES),
    st.tuples(st.just("state"), st.integers(0, 20), st.sampled_from(["online", "drain", "halt", "off", 1])),
    st.tuples(st.just("port"), st.integers(0, 20), st.one_of(st.integers(0, 70000), st.just("9001"), st.just(9001.0))),
    st.tuples(st.just("address"), st.integers(0, 20), st.sampled_from(["192.0.2.7", "2001:db8::7", "pacs.example.org", "x y"])),
    st.tuples(st.just("listen port"), st.integers(0, 20), st.integers(7999, 8010)),
    st.tuples(st.just("unknown key"), st.integers(0, 20), st.just(True)),
    st.tuples(st.just("add service"), st.integers(0, 20), st.integers(6, 12)),
    st.tuples(st.just("remove service"), st.integers(0, 20), st.just(0)),
    st.tuples(st.just("retries"), st.just(0), VALUES),
)


def _change(data: dict[str, Any], change: tuple[str, int, Any]) -> None:
    what, index, value = change
    services = data["virtual_services"]
    if what == "add service":
        services.append(_service(value))
        return
    if not services:
        return
    vs = services[index % len(services)]
    if what == "remove service":
        services.remove(vs)
    elif what == "listen port":
        vs["listen"][0]["port"] = value
    elif what == "unknown key":
        vs["colour"] = value
    elif what == "retries":
        data.setdefault("settings", {})["retries"] = value
    elif vs.get("real_servers"):
        vs["real_servers"][index % len(vs["real_servers"])][what] = value


def _same(fresh, reused) -> None:
    assert [str(p) for p in reused.problems] == [str(p) for p in fresh.problems]
    assert reused.ok == fresh.ok
    if fresh.config is not None:
        assert reused.config is not None
        assert reused.config.model_dump_json() == fresh.config.model_dump_json()
        assert reused.config == fresh.config


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(CHANGES, min_size=1, max_size=10))
def test_validation_that_reuses_services_equals_a_fresh_one_after_random_changes(changes) -> None:
    """After each change (valid or not), the configuration and every problem are those of a validation without reuse;
    a service whose data did not change since the last validation is its very object."""
    services = ValidatedServices()
    data = copy.deepcopy(BASE)
    assert validate_data(copy.deepcopy(data), services=services).ok
    for change in changes:
        _change(data, change)
        kept = dict(services._services)  # the services of the last validation that got through pydantic
        fresh = validate_data(copy.deepcopy(data))
        reused = validate_data(copy.deepcopy(data), services=services)
        _same(fresh, reused)
        if reused.config is not None:
            for vs, item in zip(reused.config.virtual_services, data["virtual_services"], strict=True):
                if service_key(item) in kept:
                    assert vs is kept[service_key(item)]


def test_an_unchanged_service_is_the_same_object_and_a_changed_one_is_validated_again() -> None:
    services = ValidatedServices()
    first = validate_data(copy.deepcopy(BASE), services=services).config
    assert services.reused == 0 and len(services) == 6
    data = copy.deepcopy(BASE)
    data["virtual_services"][2]["real_servers"][0]["weight"] = 5
    second = validate_data(data, services=services).config
    assert services.reused == 5
    assert [a is b for a, b in zip(first.virtual_services, second.virtual_services, strict=True)] == [
        True, True, False, True, True, True]  # fmt: skip
    assert second.virtual_services[2].real_servers[0].weight == 5


@pytest.mark.parametrize("value", [1, True, "1", 1.0])
def test_values_of_another_type_are_other_data(value) -> None:
    """repr tells 1 from True, '1' and 1.0: a value pydantic would take differently is never reused."""
    keys = {service_key({"weight": v}) for v in (1, True, "1", 1.0)}
    assert len(keys) == 4 and service_key({"weight": value}) in keys
    assert service_key(["not", "a", "mapping"]) is None
    assert service_key({"a": 1, "b": 2}) != service_key({"b": 2, "a": 1})  # another order: validated again


def test_a_service_that_became_invalid_is_not_reused() -> None:
    services = ValidatedServices()
    validate_data(copy.deepcopy(BASE), services=services)
    data = copy.deepcopy(BASE)
    data["virtual_services"][0]["real_servers"][0]["weight"] = "heavy"
    _same(validate_data(copy.deepcopy(data)), validate_data(data, services=services))


def test_the_services_kept_are_bounded() -> None:
    assert DEFAULT_LIMIT == MAX_VIRTUAL_SERVICES
    services = ValidatedServices(limit=2)
    validate_data(copy.deepcopy(BASE), services=services)
    assert len(services) == 2
    validate_data(copy.deepcopy(BASE), services=services)
    assert services.reused == 2
    none = ValidatedServices(limit=0)
    _same(validate_data(copy.deepcopy(BASE)), validate_data(copy.deepcopy(BASE), services=none))
    assert len(none) == 0
    with pytest.raises(ValueError, match="limit must be 0 or more"):
        ValidatedServices(limit=-1)
    services.clear()
    assert len(services) == 0


def test_the_remembered_addresses_are_bounded() -> None:
    """Addresses are parsed once (model/types.py `_ip_text`), at most MAX_KNOWN_IP_TEXTS of them and none longer
    than MAX_REMEMBERED_TEXT characters (a long text is parsed each time: no memory for what is no address)."""
    assert _ip_text_known.cache_info().maxsize == MAX_KNOWN_IP_TEXTS == 65_536
    assert _normal_address("2001:DB8:0::1") == "2001:db8::1" and _normal_address("PACS.example.org") == "pacs.example.org"
    assert _is_ip("192.0.2.1") and not _is_ip("pacs.example.org")
    _ip_text_known.cache_clear()  # a cache only: the same answers, from an empty one
    before = _ip_text_known.cache_info().currsize
    long_name = "a" * (MAX_REMEMBERED_TEXT + 1)
    assert _ip_text(long_name) is None and _ip_text("2001:db8::" + "0" * MAX_REMEMBERED_TEXT) is None
    assert _ip_text_known.cache_info().currsize == before
    assert _ip_text("198.51.100.77") == "198.51.100.77"
    assert _ip_text_known.cache_info().currsize == before + 1


# --- the shape check's quick pass ----------------------------------------------------------------------


def _shared(children: list[Any]) -> Any:
    """Data in which some lists and mappings are reached twice (YAML aliases), and sometimes a loop."""
    node: list[Any] = list(children)
    if children:
        node.append(children[0])  # the same value twice
    return node


PLAIN = st.recursive(
    st.one_of(st.integers(), st.text(max_size=3), st.none()),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=3), inner, max_size=4)),
    max_leaves=40,
)
SHARED = st.recursive(
    st.one_of(st.integers(), st.none()),
    lambda inner: st.one_of(st.lists(inner, max_size=3).map(_shared), st.dictionaries(st.text(max_size=2), inner, max_size=3)),
    max_leaves=30,
)


@settings(max_examples=100, deadline=None)
@given(st.one_of(PLAIN, SHARED))
def test_the_quick_pass_agrees_with_the_full_walk(data) -> None:
    assert shape_problems(data) == _shape_walk(data)


def test_the_quick_pass_leaves_loops_depth_and_size_to_the_full_walk() -> None:
    loop: list[Any] = []
    loop.append(loop)
    deep: Any = 0
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    big = {"values": [0] * MAX_VALUES}
    shared = [0] * 10
    alias = {"a": shared, "b": shared}
    found = {}
    for name, data in {"loop": loop, "inner loop": {"x": loop}, "deep": deep, "big": big, "alias": alias}.items():
        found[name] = shape_problems(data)
        assert found[name] == _shape_walk(data), name
    assert "refers to itself" in found["loop"][0].message and "refers to itself" in found["inner loop"][0].message
    assert "deeper than" in found["deep"][0].message
    assert "more than" in found["big"][0].message
    assert found["alias"] == []
