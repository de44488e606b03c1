"""The controller API's changes: apply, runtime control of real servers, revisions, diff, rollback.

  POST /api/v1/apply                                                    {yaml and/or config, base_dir, dry_run, author, message}
  POST /api/v1/virtual-services/{service}/real-servers/{real_server}/state   {state: online|drain|halt, all, author, message}
  POST /api/v1/virtual-services/{service}/real-servers/{real_server}/weight  {weight: 0..256, author, message}
  POST /api/v1/revisions/{id}/rollback                                  {dry_run, author, message}
  GET  /api/v1/revisions?limit=N&before=ID                              the latest revisions first (no configurations)
  GET  /api/v1/revisions/{id}                                           one revision, with its whole configuration
  GET  /api/v1/diff?from=ID&to=ID                                       readable model diff (store/history.py)

A change answers 200 (applied, unchanged, dry-run), 422 (invalid: `problems` with field paths),
409 (refused: an engine refused it or it failed; the previous configuration serves; `message` and
`messages` say why) or 404 (no such service, real server or revision), always with the same body
(ChangeResult.as_dict): outcome, message, plan, revision, problems, messages, timings, engine.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..api.answers import ChangeAnswer, DiffAnswer, RevisionAnswer, RevisionsAnswer
from ..api.contract import answers
from ..change.requests import ChangeRequest, RollbackChange, StateChange, WeightChange
from ..change.result import ChangeResult
from ..change.service import Origin, default_author
from ..model.limits import MAX_CONFIG_BYTES, MAX_TEXT
from ..store import RevisionStore, StoreError
from ..store.history import revision_diff
from . import API_PREFIX

MAX_ID = 2**53  # as the management API (api/routes_observe.py): SQLite refuses larger integers with an OverflowError (a 500)
RevId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="a revision id")]


class ChangeSurface(Protocol):
    store: RevisionStore

    async def apply(self, **kwargs: Any) -> ChangeResult: ...

    async def set_real_server(self, service: str, real_server: str, **kwargs: Any) -> ChangeResult: ...

    async def rollback(self, rev_id: int, **kwargs: Any) -> ChangeResult: ...


class Authored(BaseModel):
    """What only the CLI's door says: who asks (the controller socket is the state directory owner's alone)."""

    author: str | None = Field(default=None, max_length=200, description="who asks (recorded in the revision)")


class ApplyRequest(Authored, ChangeRequest):
    # the validator's rule below, in the schema: yaml or config, or both
    model_config = ConfigDict(json_schema_extra={"anyOf": [{"required": ["yaml"], "properties": {"yaml": {"type": "string"}}},
                                                           {"required": ["config"], "properties": {"config": {"type": "object"}}}]})  # fmt: skip

    yaml: str | None = Field(
        default=None, max_length=MAX_CONFIG_BYTES, description="the configuration as YAML text (stored as given)"
    )
    config: dict[str, Any] | None = Field(
        default=None,
        description="the configuration as JSON; with `yaml` too, this is what is validated and `yaml` the text it "
        "was read from (the CLI parses the file itself: large files cost the controller far less memory as JSON)",
    )
    base_dir: str | None = Field(
        default=None, max_length=MAX_TEXT, description="folder that relative certificate paths are read from"
    )
    dry_run: bool = Field(default=False, description="validate, check with every engine and plan; change nothing")

    @model_validator(mode="after")
    def _a_source(self) -> "ApplyRequest":
        if self.yaml is None and self.config is None:
            raise ValueError("give the configuration as 'yaml' (text) or 'config' (JSON), or both")
        return self


# The body of POST /apply as the OpenAPI document shows it (the route reads the body itself: apply_request).
APPLY_BODY = {"required": True, "content": {"application/json": {"schema": ApplyRequest.model_json_schema()}}}


async def apply_request(http: Request) -> ApplyRequest:
    """The body of POST /apply parsed straight into its model, the bytes dropped at once: FastAPI would keep the
    bytes and their JSON as well (with the model: three copies, 8 MB at 1,000 services x 10 real servers) for as
    long as the change runs. A body that is not one is FastAPI's own 422, its fields under "body" as FastAPI names them.
    """
    chunks = [chunk async for chunk in http.stream()]  # the size and depth limits ran before (JsonBodyLimit)
    body = b"".join(chunks)
    del chunks
    try:
        return ApplyRequest.model_validate_json(body)
    except ValidationError as exc:
        # the body itself (not JSON, not an object) is not echoed back: FastAPI's own answer shows {} there too
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"]), **({} if e["loc"] else {"input": {}})}
                                      for e in exc.errors(include_url=False)]) from None  # fmt: skip


class StateRequest(Authored, StateChange):
    pass


class WeightRequest(Authored, WeightChange):
    pass


class RollbackRequest(Authored, RollbackChange):
    pass


def _answer(result: ChangeResult) -> JSONResponse:
    return JSONResponse(result.as_dict(), status_code=result.http_status)


def _not_found(message: str) -> JSONResponse:
    return JSONResponse({"outcome": "not-found", "message": message}, status_code=404)


def _origin(author: str | None) -> Origin:
    """Changes through this API come from the CLI (its socket is the state directory owner's only)."""
    return Origin(author or default_author(), "cli")


def changes_router(changes: ChangeSurface) -> APIRouter:
    """The change routes over the change front door (change/service.py), which records each one in the audit log."""
    router = APIRouter(prefix=API_PREFIX)

    @router.post(
        "/apply", summary="Apply a configuration (YAML and/or JSON), or check it (dry run)",
        openapi_extra={"requestBody": APPLY_BODY}, **answers(ChangeAnswer, 400, 409),
    )  # fmt: skip
    async def apply(http: Request) -> JSONResponse:
        request = await apply_request(http)
        source = {"data": request.config, "yaml_text": request.yaml} if request.config is not None else {"text": request.yaml}
        request.config = None  # handed over: the change empties it once validated (consume_data)
        result = await changes.apply(
            **source, base_dir=request.base_dir, origin=_origin(request.author), message=request.message,
            dry_run=request.dry_run, action="config.replace", base_revision=request.base_revision, consume_data=True,
        )  # fmt: skip
        return _answer(result)

    @router.post(
        "/virtual-services/{service}/real-servers/{real_server}/state",
        summary="Drain, halt or bring online a real server",
        **answers(ChangeAnswer, 400, 404, 409),
    )
    async def set_state(service: str, real_server: str, request: StateRequest) -> JSONResponse:
        result = await changes.set_real_server(
            service, real_server, state=request.state, every_service=request.all, origin=_origin(request.author),
            message=request.message, base_revision=request.base_revision,
        )  # fmt: skip
        return _answer(result)

    @router.post(
        "/virtual-services/{service}/real-servers/{real_server}/weight",
        summary="Set the weight of a real server",
        **answers(ChangeAnswer, 400, 404, 409),
    )
    async def set_weight(service: str, real_server: str, request: WeightRequest) -> JSONResponse:
        result = await changes.set_real_server(
            service,
            real_server,
            weight=request.weight,
            origin=_origin(request.author),
            message=request.message,
            base_revision=request.base_revision,
        )
        return _answer(result)

    @router.post("/revisions/{rev_id}/rollback", summary="Run an earlier revision again", **answers(ChangeAnswer, 400, 404, 409))
    async def rollback(rev_id: RevId, request: RollbackRequest) -> JSONResponse:
        result = await changes.rollback(rev_id, origin=_origin(request.author), message=request.message,
                                        dry_run=request.dry_run, base_revision=request.base_revision)  # fmt: skip
        return _answer(result)

    @router.get("/revisions", summary="The latest revisions first", **answers(RevisionsAnswer))
    async def revisions(limit: int = Query(50, ge=1, le=10_000), before: int | None = Query(None, ge=1, le=MAX_ID)) -> dict:
        found = await asyncio.to_thread(changes.store.list, limit, before)
        current = await asyncio.to_thread(changes.store.current_id)
        return {"current": current, "revisions": [r.summary() for r in found]}

    @router.get("/revisions/{rev_id}", summary="One revision, with its configuration", **answers(RevisionAnswer, 404))
    async def revision(rev_id: RevId) -> JSONResponse:
        found = await asyncio.to_thread(changes.store.get, rev_id)
        if found is None:
            return _not_found(await asyncio.to_thread(changes.store.missing, rev_id))
        return JSONResponse(found.as_dict())

    @router.get("/diff", summary="Diff between two revisions", **answers(DiffAnswer, 404))
    async def diff(from_id: int | None = Query(None, alias="from", ge=1, le=MAX_ID),
                   to_id: int | None = Query(None, alias="to", ge=1, le=MAX_ID)) -> JSONResponse:  # fmt: skip
        try:
            found = await asyncio.to_thread(revision_diff, changes.store, from_id, to_id, changes.secret_store())
        except StoreError as exc:
            return _not_found(str(exc))
        return JSONResponse(found.as_dict())

    return router
