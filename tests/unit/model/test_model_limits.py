"""The model's limits (issue 13, issue 16 API): every text a maximum length, every list a maximum size. Each
kind of limit passes at its bound and is refused one over with the field's path; the JSON Schema carries
them (maxLength, maxItems) and docs/configuration.md lists them."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from pacslb.model import Config, validate_data
from pacslb.model import limits as L
from pacslb.model.types import MAX_SECRET

DOC = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


def _service(i: int = 0, **more: Any) -> dict[str, Any]:
    return {"name": f"svc{i}", "mode": "layer7-http", "listen": [{"address": "192.0.2.1", "port": 10000 + i}],
            "health_check": {"type": "none"}, "real_servers": [{"name": "rs1", "address": "192.0.2.11", "port": 80}],
            **more}  # fmt: skip


def _base() -> dict[str, Any]:
    return {"version": 1, "virtual_services": [_service()]}


def _vs(data: dict) -> dict:
    return data["virtual_services"][0]


def _set(setter: Callable[[dict, int], None]) -> Callable[[int], dict]:
    def build(n: int) -> dict:
        data = _base()
        setter(data, n)
        return data

    return build


# (the field's path as a Problem names it, its bound, a configuration whose field holds n characters or items)
CASES: list[tuple[str, int, Callable[[int], dict]]] = [
    ("virtual_services[svc0].description", L.MAX_DESCRIPTION, _set(lambda d, n: _vs(d).update(description="d" * n))),
    ("virtual_services[svc0].health_check.path", L.MAX_TEXT,
     _set(lambda d, n: _vs(d).update(health_check={"type": "http", "path": "/" + "p" * (n - 1)}))),
    ("virtual_services[svc0].tls.certificates[0]", L.MAX_TEXT,
     _set(lambda d, n: _vs(d).update(tls={"certificates": ["/" + "c" * (n - 1)]}))),
    ("virtual_services[svc0].health_check.password", MAX_SECRET,
     _set(lambda d, n: _vs(d).update(mode="layer7-tcp", health_check={"type": "amqp", "username": "u", "password": "s" * n}))),
    ("virtual_services", L.MAX_VIRTUAL_SERVICES,
     _set(lambda d, n: d.update(virtual_services=[_service(i) for i in range(n)]))),
    ("virtual_services[svc0].real_servers", L.MAX_REAL_SERVERS,
     _set(lambda d, n: _vs(d).update(real_servers=[{"name": f"rs{i}", "address": "192.0.2.11", "port": 1 + i} for i in range(n)]))),
    ("virtual_services[svc0].rules", L.MAX_RULES,
     _set(lambda d, n: _vs(d).update(rules=[{"name": f"r{i}", "match": {"path_begins": [f"/{i}"]}, "deny": {}} for i in range(n)]))),
    ("virtual_services[svc0].listen", L.MAX_LISTENERS,
     _set(lambda d, n: _vs(d).update(listen=[{"address": "192.0.2.1", "port": 20000 + i} for i in range(n)]))),
    ("virtual_services[svc0].headers.request", L.MAX_HEADER_RULES,
     _set(lambda d, n: _vs(d).update(headers={"request": [{"action": "delete", "name": f"X-{i}"} for i in range(n)]}))),
    ("virtual_services[svc0].rules[r].match.source", L.MAX_MATCH_ITEMS,
     _set(lambda d, n: _vs(d).update(rules=[{"name": "r", "match": {"source": [f"10.{i // 256}.{i % 256}.0/24" for i in range(n)]},
                                             "deny": {}}]))),
    ("virtual_services[svc0].health_check.expect_status", L.MAX_SMALL_LIST,
     _set(lambda d, n: _vs(d).update(health_check={"type": "http", "expect_status": [200 + i for i in range(n)]}))),
    ("settings.files.allowed_directories", L.MAX_SMALL_LIST,
     _set(lambda d, n: d.update(settings={"files": {"allowed_directories": [f"/srv/d{i}" for i in range(n)]}}))),
]  # fmt: skip


def _limit_problems(data: dict) -> list[str]:
    return [str(p) for p in validate_data(data).problems if "at most" in p.message]


@pytest.mark.parametrize("path, bound, build", CASES, ids=[c[0] for c in CASES])
def test_each_limit_passes_at_its_bound_and_names_the_field_one_over(path: str, bound: int, build):
    assert _limit_problems(build(bound)) == []
    over = _limit_problems(build(bound + 1))
    unit = "characters" if path.rsplit(".", 1)[-1] in ("description", "path", "certificates[0]", "password") else "items"
    assert over == [f"{path}: at most {bound:,} {unit} (this one has {bound + 1:,}): "
                    + ("shorten it" if unit == "characters" else "split the configuration, or remove some")], over  # fmt: skip


def test_port_ranges_are_bounded_in_all_at_the_bound_and_one_over():
    def ranged(n: int) -> dict:
        services = [_service(i) for i in range(n // 128 + 1)]
        for i in range(n):  # 128 ranges per service, each its own ports
            services[i // 128]["listen"].append({"address": "192.0.2.2", "port": f"{20000 + 2 * i}-{20001 + 2 * i}"})
        return {"version": 1, "virtual_services": services}

    assert [str(p) for p in validate_data(ranged(L.MAX_PORT_RANGES)).problems] == []
    assert [str(p) for p in validate_data(ranged(L.MAX_PORT_RANGES + 1)).problems] == [
        f"virtual_services: at most {L.MAX_PORT_RANGES:,} listeners with a port range in all (this one has "
        f"{L.MAX_PORT_RANGES + 1:,}): list the ports that are used, or merge ranges"
    ]


def test_the_10_mb_description_is_refused_naming_the_field_without_echoing_it():
    data = _base()
    _vs(data)["description"] = "x" * (10 * 1024 * 1024)
    (problem,) = validate_data(data).problems
    assert problem.path == "virtual_services[svc0].description"
    assert problem.message == f"at most {L.MAX_DESCRIPTION:,} characters (this one has 10,485,760): shorten it"


def test_pacslb_validate_refuses_a_10_mb_description_and_one_over_the_bound(tmp_path: Path):
    for text, says in (("x" * (10 * 1024 * 1024), f"may have at most {L.MAX_CONFIG_BYTES}"),
                       ("x" * (L.MAX_DESCRIPTION + 1), "virtual_services[svc0].description: at most 1,024 characters")):  # fmt: skip
        data = _base()
        _vs(data)["description"] = "DESCRIPTION"
        config = tmp_path / "pacslb.yaml"
        config.write_text(json.dumps(data).replace("DESCRIPTION", text))  # JSON is YAML; PyYAML's emitter is slow
        done = subprocess.run([sys.executable, "-m", "pacslb", "validate", "-c", str(config)], capture_output=True,
                              text=True, timeout=120)  # fmt: skip
        assert done.returncode == 2 and says in done.stderr and "Traceback" not in done.stderr, done.stderr


def _schema_at(schema: dict, *path: str) -> dict:
    node = schema
    for key in path:
        node = node[key]
        if "$ref" in node:
            node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def test_the_json_schema_carries_the_limits():
    schema = json.loads(json.dumps(Config.model_json_schema(mode="validation")))
    vs = _schema_at(schema, "properties", "virtual_services", "items")
    assert _schema_at(schema, "properties", "virtual_services")["maxItems"] == L.MAX_VIRTUAL_SERVICES
    assert vs["properties"]["real_servers"]["maxItems"] == L.MAX_REAL_SERVERS
    assert vs["properties"]["rules"]["maxItems"] == L.MAX_RULES
    assert vs["properties"]["listen"]["maxItems"] == L.MAX_LISTENERS
    assert {"maxLength": L.MAX_DESCRIPTION, "type": "string"} in vs["properties"]["description"]["anyOf"]
    assert _schema_at(schema, "$defs", "RealServer")["properties"]["address"]["maxLength"] == L.MAX_TEXT
    text = json.dumps(schema)
    # every string of the model is bounded: no "type": "string" without a maxLength beside it (enums aside)
    unbounded = [m.group(0) for m in re.finditer(r'\{[^{}]*"type": "string"[^{}]*\}', text)
                 if "maxLength" not in m.group(0) and "enum" not in m.group(0) and "const" not in m.group(0)
                 and "pattern" not in m.group(0)]  # fmt: skip
    assert unbounded == []
    arrays = [m.group(0) for m in re.finditer(r'\{[^{}]*"type": "array"[^{}]*\}', text) if "maxItems" not in m.group(0)]
    assert arrays == []


def test_docs_list_every_limit():
    text = DOC.read_text()
    assert "## Limits" in text
    section = text.split("## Limits", 1)[1].split("\n## ", 1)[0]
    for name in ("MAX_TEXT", "MAX_DESCRIPTION", "MAX_VIRTUAL_SERVICES", "MAX_REAL_SERVERS", "MAX_RULES", "MAX_LISTENERS",
                 "MAX_CERTIFICATES", "MAX_HEADER_RULES", "MAX_MATCH_ITEMS", "MAX_SMALL_LIST", "MAX_CONFIG_BYTES", "MAX_PORT_RANGES",
                 "MAX_DEPTH", "MAX_VALUES"):  # fmt: skip
        value = getattr(L, name)
        shown = f"{value // (1024 * 1024)} MiB" if name == "MAX_CONFIG_BYTES" else f"{value:,}"
        assert shown in section, f"docs/configuration.md, Limits: {name} ({shown}) is not listed"
    assert f"{MAX_SECRET:,}" in section


def test_the_bench_configuration_is_within_every_limit():
    services = [_service(i, real_servers=[{"name": f"rs{j}", "address": "192.0.2.11", "port": 10000 + j} for j in range(10)])
                for i in range(1000)]  # fmt: skip
    loaded = validate_data({"version": 1, "virtual_services": copy.deepcopy(services)})
    assert loaded.ok, [str(p) for p in loaded.problems][:5]


def test_a_refusal_never_echoes_a_huge_value():
    data = _base()
    _vs(data)["mode"] = "m" * (10 * 1024 * 1024)  # a choice, whose message quotes what was given
    _vs(data)["real_servers"][0]["address"] = "a" * 5000  # a validator's own message quoting it
    problems = {p.path: p.message for p in validate_data(data).problems}
    assert problems["virtual_services[svc0].mode"].startswith(f"{'m' * 60!r}... (10,485,760 characters) is not allowed")
    assert problems["virtual_services[svc0].real_servers[rs1].address"].startswith(f"{'a' * 60!r}... (5,000 characters)")
    assert all(len(m) < 1100 for m in problems.values())
    _vs(data)["real_servers"][0] = {"name": "n" * 5000, "address": "192.0.2.11", "port": 80}  # a path names it by index
    assert "virtual_services[svc0].real_servers[0].name" in {p.path for p in validate_data(data).problems}
