"""The readable model diff: field paths with names, not list indexes; never engine text."""

from __future__ import annotations

import pytest

from pacslb.model import load_text
from pacslb.model.diff import Change, diff, diff_data, format_value

BASE = """
version: 1
virtual_services:
  - name: WFC_443
    mode: layer7-http
    listen: [{address: 192.0.2.10, port: 443}]
    health_check: {type: http, path: /}
    real_servers:
      - {name: rs1, address: 192.0.2.21, port: 443}
      - {name: rs2, address: 192.0.2.22, port: 443}
  - name: RMQ
    mode: layer7-tcp
    listen: [{address: 192.0.2.10, port: 8081}]
    real_servers:
      - {name: mq1, address: 192.0.2.31, port: 5672}
"""


def config(text: str = BASE):
    loaded = load_text(text)
    assert loaded.ok, loaded.problems
    return loaded.config


def lines(old: str, new: str) -> list[str]:
    return [str(c) for c in diff(config(old), config(new))]


def test_same_model_no_change():
    assert diff(config(), config()) == []


def test_a_default_written_out_is_no_change():
    assert lines(BASE, BASE.replace("{name: rs1, address: 192.0.2.21, port: 443}",
                                    "{name: rs1, address: 192.0.2.21, port: 443, weight: 100}")) == []  # fmt: skip


def test_real_server_added_removed_and_changed_by_name():
    new = BASE.replace(
        "      - {name: rs1, address: 192.0.2.21, port: 443}\n",
        "      - {name: rs1, address: 192.0.2.21, port: 443, weight: 50, state: drain}\n"
        "      - {name: rs3, address: 192.0.2.23, port: 443}\n",
    ).replace("      - {name: rs2, address: 192.0.2.22, port: 443}\n", "")
    assert lines(BASE, new) == [
        "virtual_services[WFC_443].real_servers[rs2]: removed",
        "virtual_services[WFC_443].real_servers[rs1].weight: 100 -> 50",
        "virtual_services[WFC_443].real_servers[rs1].state: online -> drain",
        "virtual_services[WFC_443].real_servers[rs3]: added",
    ]


def test_fields_none_values_and_lists():
    new = BASE.replace(
        "health_check: {type: http, path: /}", "health_check: {type: http, path: /health, expect_status: [200, 204]}"
    )
    new = new.replace("    mode: layer7-http\n", "    mode: layer7-http\n    description: main VIP\n")
    assert lines(BASE, new) == [
        "virtual_services[WFC_443].description: (none) -> main VIP",
        "virtual_services[WFC_443].health_check.path: / -> /health",
        "virtual_services[WFC_443].health_check.expect_status: [200] -> [200, 204]",
    ]


def test_union_type_change_names_each_field():
    new = BASE.replace("    mode: layer7-tcp\n", "    mode: layer7-tcp\n    health_check: {type: none}\n")
    assert lines(BASE, new) == [
        "virtual_services[RMQ].health_check.interval: 5s -> (none)",
        "virtual_services[RMQ].health_check.timeout: 4s -> (none)",
        "virtual_services[RMQ].health_check.rise: 2 -> (none)",
        "virtual_services[RMQ].health_check.fall: 3 -> (none)",
        "virtual_services[RMQ].health_check.type: connect -> none",
    ]


def test_order_of_named_items():
    swapped = BASE.replace(
        "      - {name: rs1, address: 192.0.2.21, port: 443}\n      - {name: rs2, address: 192.0.2.22, port: 443}\n",
        "      - {name: rs2, address: 192.0.2.22, port: 443}\n      - {name: rs1, address: 192.0.2.21, port: 443}\n",
    )
    assert lines(BASE, swapped) == ["virtual_services[WFC_443].real_servers: order rs1, rs2 -> rs2, rs1"]


def test_service_added_and_settings():
    new = (
        BASE
        + """  - name: WFC_80
    mode: layer7-http
    listen: [{address: 192.0.2.10, port: 80}]
    real_servers: [{name: rs1, address: 192.0.2.21, port: 80}]
settings: {max_reloads: 10}
"""
    )
    assert lines(BASE, new) == ["settings.max_reloads: 50 -> 10", "virtual_services[WFC_80]: added"]


def test_changes_carry_values_and_json():
    (change,) = diff_data({"a": {"b": 1}}, {"a": {"b": 2}})
    assert change == Change("a.b", "changed", 1, 2)
    assert change.as_dict() == {"path": "a.b", "kind": "changed", "old": 1, "new": 2, "text": "a.b: 1 -> 2"}


@pytest.mark.parametrize(
    "value, text",
    [(None, "(none)"), (True, "true"), ("", '""'), ("x y", "x y"), (3, "3"), ([1, "a"], '[1, "a"]'), ({"k": 1}, '{"k": 1}')],
)
def test_format_value(value, text):
    assert format_value(value) == text


def test_diff_of_models_is_diff_of_their_dumps():
    """`diff` dumps only the services that differ; it says exactly what diff_data of the whole dumps says."""
    variants = [
        BASE,
        BASE.replace("port: 443}\n      - {name: rs2", "port: 443, weight: 5}\n      - {name: rs2"),
        BASE.replace("    mode: layer7-tcp\n", "    mode: layer7-tcp\n    health_check: {type: none}\n"),
        BASE + "  - name: WFC_80\n    mode: layer7-http\n    listen: [{address: 192.0.2.10, port: 80}]\n"
        "    real_servers: [{name: rs1, address: 192.0.2.21, port: 80}]\n",
        BASE.replace("version: 1\n", "version: 1\nsettings: {retries: 1}\n"),
    ]
    swapped = BASE.split("  - name: RMQ")
    variants.append(swapped[0].replace("virtual_services:\n", "virtual_services:\n  - name: RMQ" + swapped[1]))
    for a in variants:
        for b in variants:
            old, new = config(a), config(b)
            assert diff(old, new) == diff_data(old.model_dump(mode="json"), new.model_dump(mode="json")), (a, b)
