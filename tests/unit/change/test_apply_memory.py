"""A whole-file apply does not keep the request's data beside the models: POST /apply parses its body itself (no
bytes nor JSON kept by FastAPI), and the change empties the data it was handed once it is validated."""

from __future__ import annotations

import yaml

from pacslb.change.result import Outcome
from pacslb.change.service import Origin

from ..controller.test_api_changes import YAML, Changes, client, store  # noqa: F401 - `store` is a fixture used here
from .test_changes import TEXT, rig  # noqa: F401 - `rig` is a fixture used here


async def test_handed_over_data_is_emptied_once_validated_and_applied(rig):  # noqa: F811 - the fixture
    changes, *_ = rig
    data = yaml.safe_load(TEXT.replace("port: 8080", "port: 8081"))
    result = await changes.apply(data=data, origin=Origin("ann", "cli"), consume_data=True)
    assert result.outcome is Outcome.APPLIED, result.message
    assert data == {}
    assert changes.running.config.virtual_services  # what counts is in the model


async def test_data_not_handed_over_is_left_alone(rig):  # noqa: F811
    changes, *_ = rig
    data = yaml.safe_load(TEXT.replace("port: 8080", "port: 8082"))
    kept = yaml.safe_load(TEXT.replace("port: 8080", "port: 8082"))
    result = await changes.apply(data=data, origin=Origin("ann", "cli"))
    assert result.outcome is Outcome.APPLIED, result.message
    assert data == kept


async def test_the_apply_route_hands_its_data_over(store):  # noqa: F811
    changes = Changes(store)
    async with client(changes) as c:
        assert (await c.post("/api/v1/apply", json={"yaml": YAML, "config": {"version": 1}})).status_code == 200
    ((_, kwargs),) = changes.calls
    assert kwargs["consume_data"] is True and kwargs["data"] == {"version": 1} and kwargs["yaml_text"] == YAML


async def test_a_body_that_is_not_a_request_is_fastapis_422_naming_the_field(store):  # noqa: F811
    changes = Changes(store)
    async with client(changes) as c:
        not_json = await c.post("/api/v1/apply", content=b"\x00", headers={"content-type": "application/json"})
        wrong_type = await c.post("/api/v1/apply", json={"yaml": 3})
        not_an_object = await c.post("/api/v1/apply", json=[1, 2])
    assert not_json.status_code == wrong_type.status_code == not_an_object.status_code == 422
    (error,) = not_json.json()["detail"]
    assert error["loc"] == ["body"] and error["type"] == "json_invalid" and error["input"] == {}
    (error,) = wrong_type.json()["detail"]
    assert error["loc"] == ["body", "yaml"] and error["input"] == 3
    assert not_an_object.json()["detail"][0]["loc"] == ["body"]
    assert changes.calls == []


def test_the_document_still_describes_the_body(store):  # noqa: F811
    from pacslb.controller.api import create_app

    from ..controller.test_api_changes import Controller

    document = create_app(Controller(Changes(store)), Changes(store)).openapi()
    schema = document["paths"]["/api/v1/apply"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"yaml", "config", "base_dir", "dry_run", "author", "message", "base_revision"} <= set(schema["properties"])
