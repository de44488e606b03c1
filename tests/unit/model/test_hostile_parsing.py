"""Parsing limits (issue 13): YAML and JSON nested 5,000 levels, alias bombs, documents that refer to
themselves and over-size texts are refused with a Problem (model/limits.py), never a RecursionError; JSON
request bodies are refused by the middleware of every HTTP server (request_limits.py) with 422 or 413."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi import Body, FastAPI
from fastapi.testclient import TestClient

from pacslb.model import load_text, validate_data
from pacslb.model.limits import MAX_CONFIG_BYTES, MAX_DEPTH, MAX_VALUES, shape_problems
from pacslb.model.load import parse_yaml
from pacslb.request_limits import MAX_BODY_DEPTH, JsonBodyLimit, json_depth

DEEP = 5000


def _nested(levels: int) -> list:
    """A list nested `levels` deep, built without recursion."""
    inner: list = []
    for _ in range(levels - 1):
        inner = [inner]
    return inner


@pytest.mark.parametrize(
    "text",
    [
        "version: 1\nsettings: " + "[" * DEEP + "]" * DEEP + "\n",
        "version: 1\nsettings: " + "{a: " * DEEP + "1" + "}" * DEEP + "\n",
        "version: 1\nsettings:\n  " + "- " * DEEP + "x\n",
    ],
    ids=["flow lists", "flow mappings", "block lists"],
)
def test_yaml_nested_5000_levels_is_refused_with_a_problem(text: str):
    started = time.monotonic()
    loaded = load_text(text)
    assert loaded.config is None
    (problem,) = loaded.problems
    assert f"deeper than {MAX_DEPTH} levels" in problem.message, problem
    assert time.monotonic() - started < 10


def test_nesting_at_the_bound_passes_the_shape_check_and_one_more_level_names_its_path():
    assert shape_problems({"settings": _nested(MAX_DEPTH - 1)}) == []  # the mapping, then MAX_DEPTH - 1 lists
    (problem,) = shape_problems({"settings": _nested(MAX_DEPTH)})
    assert problem.path == "settings" + "[0]" * (MAX_DEPTH - 1), problem.path
    assert f"nested deeper than {MAX_DEPTH} levels" in problem.message
    # through validate_data, as the API and the peer link hand JSON to the model
    (problem,) = validate_data({"version": 1, "virtual_services": _nested(MAX_DEPTH + 5)}).problems
    assert problem.path.startswith("virtual_services[0]") and "nested deeper" in problem.message


def test_an_alias_bomb_is_refused_by_its_expanded_size_without_expanding_it():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]  # 10^9 values
    started = time.monotonic()
    loaded = load_text("version: 1\nsettings:\n" + "\n".join("  " + line for line in lines) + "\n")
    (problem,) = loaded.problems
    assert f"more than {MAX_VALUES:,} values" in problem.message, problem
    assert time.monotonic() - started < 10


def test_a_document_that_refers_to_itself_is_refused():
    loaded = load_text("version: 1\nsettings: &s [x, *s]\n")  # (a mapping inside itself PyYAML refuses already)
    (problem,) = loaded.problems
    assert "refers to itself" in problem.message, problem


def test_a_text_over_the_size_bound_is_not_parsed():
    data, problems = parse_yaml("#" * (MAX_CONFIG_BYTES + 1))
    assert data is None and f"at most {MAX_CONFIG_BYTES:,}" in problems[0].message


def test_pacslb_validate_exits_2_on_5000_levels_without_a_traceback(tmp_path: Path):
    config = tmp_path / "deep.yaml"
    config.write_text("version: 1\nsettings: " + "[" * DEEP + "]" * DEEP + "\n")
    done = subprocess.run([sys.executable, "-m", "pacslb", "validate", "-c", str(config)], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"nests deeper than {MAX_DEPTH} levels" in done.stderr and "Traceback" not in done.stderr


# --- JSON request bodies -------------------------------------------------------------------------


def test_json_depth_counts_brackets_outside_strings_only():
    assert json_depth(b'{"a": [1, {"b": "[[[{{{"}], "c": "\\"]]"}') == 3
    assert json_depth(b"[" * DEEP + b"]" * DEEP) == MAX_BODY_DEPTH + 1  # stops counting past the bound


@pytest.fixture
def client():
    app = FastAPI()

    @app.post("/echo")
    async def echo(body: object = Body(...)) -> dict:
        return {"got": len(json.dumps(body))}

    app.add_middleware(JsonBodyLimit, max_bytes=64 * 1024)
    with TestClient(app) as test_client:
        yield test_client


def test_a_json_body_nested_5000_levels_gets_422_saying_so(client):
    response = client.post("/echo", content=b"[" * DEEP + b"]" * DEEP, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert f"nests deeper than {MAX_BODY_DEPTH} levels" in response.json()["problems"][0]["message"]


def test_a_json_body_at_the_depth_bound_reaches_the_route(client):
    body = b"[" * MAX_BODY_DEPTH + b"]" * MAX_BODY_DEPTH
    assert client.post("/echo", content=body, headers={"content-type": "application/json"}).status_code == 200
    deeper = b"[" + body + b"]"
    assert client.post("/echo", content=deeper, headers={"content-type": "application/json"}).status_code == 422


def test_a_body_over_its_size_bound_gets_413_naming_the_limit(client):
    at_bound = b'"' + b"x" * (64 * 1024 - 2) + b'"'
    assert client.post("/echo", content=at_bound, headers={"content-type": "application/json"}).status_code == 200
    response = client.post("/echo", content=at_bound + b" ", headers={"content-type": "application/json"})
    assert response.status_code == 413 and "larger than 64 KiB" in response.json()["message"]

    def chunks():  # no Content-Length: cut as it passes the bound
        for _ in range(100):
            yield b" " * 1024

    response = client.post("/echo", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
