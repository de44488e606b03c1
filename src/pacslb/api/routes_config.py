"""Configuration resources: the whole configuration, virtual services, real servers, rules and health checks.

Reads answer any role. Writes of the configuration need the admin role and name their base revision
(writes.py). Runtime control of a real server (state drain / halt / online, weight) needs the operator
role (or admin) and goes through the change front door's fast path (runtime API, no reload).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from ..change.requests import ChangeRequest, ConfigChange, StateChange, WeightChange
from .answers import (
    ChangeAnswer,
    ConfigAnswer,
    HealthCheckAnswer,
    RealServerAnswer,
    RealServersAnswer,
    RuleAnswer,
    RulesAnswer,
    ServiceAnswer,
    ServicesAnswer,
)
from .auth import Principal, require_role
from .contract import BASE_QUERY, REVISION_OPTIONAL, REVISION_REQUIRED, answers
from .writes import ApiError, Writer, base_revision_of, current_revision, find, origin_of

READ = require_role("viewer", "operator")
OPERATE = require_role("operator")
ADMIN = require_role("admin")


Write = ChangeRequest  # the one request schema of a change (change/requests.py); base_revision may also be If-Match
ConfigWrite = ConfigChange


class VirtualServiceWrite(Write):
    virtual_service: dict[str, Any] = Field(description="a virtual service (docs/configuration.md, VirtualService)")


class RealServerWrite(Write):
    real_server: dict[str, Any] = Field(description="a real server (docs/configuration.md, RealServer)")


class RuleWrite(Write):
    rule: dict[str, Any] = Field(description="a rule (docs/configuration.md, Rule)")


class HealthCheckWrite(Write):
    health_check: dict[str, Any] = Field(description="a health check (docs/configuration.md, Health checks)")


StateWrite = StateChange
WeightWrite = WeightChange


def _services(data: dict[str, Any]) -> list[dict[str, Any]]:
    return data.setdefault("virtual_services", [])


def _service(data: dict[str, Any], name: str) -> dict[str, Any]:
    services = _services(data)
    return services[find(services, name, "virtual service")]


def _named(item: Any, what: str) -> str:
    name = item.get("name") if isinstance(item, dict) else None
    if not isinstance(name, str) or not name:
        raise ApiError(422, f"the {what} needs a name", problems=[{"path": "name", "message": "required field is missing",
                                                                     "severity": "error"}])  # fmt: skip
    return name


# The edits of a named item in a list of a virtual service (`real_servers`, `rules`): `what` names it in answers.


def _add_item(service: str, key: str, what: str, item: dict[str, Any], position: int | None = None) -> Callable:
    """Add `item` at the end, or at `position`; 409 when its name is taken, 422 when it has none."""

    def add(data: dict[str, Any]) -> None:
        items = _service(data, service).setdefault(key, [])
        name = _named(item, what)
        if any(i.get("name") == name for i in items):
            raise ApiError(409, f"{service} has a {what} {name} already: replace it with PUT")
        items.insert(len(items) if position is None else max(0, min(position, len(items))), item)

    return add


def _replace_item(service: str, key: str, what: str, name: str, item: dict[str, Any]) -> Callable:
    """Replace the item called `name` (404 when there is none) by `item`, named `name` unless it says otherwise."""

    def replace(data: dict[str, Any]) -> None:
        items = _service(data, service).setdefault(key, [])
        new = dict(item)
        new.setdefault("name", name)
        items[find(items, name, f"{what} in {service} called")] = new

    return replace


def _delete_item(service: str, key: str, what: str, name: str) -> Callable:
    """Delete the item called `name` (404 when there is none)."""

    def delete(data: dict[str, Any]) -> None:
        items = _service(data, service).setdefault(key, [])
        del items[find(items, name, f"{what} in {service} called")]

    return delete


def config_router(writer: Writer) -> APIRouter:
    router = APIRouter(tags=["configuration"])
    controller = writer.controller

    def model() -> dict[str, Any]:
        return controller.config.model_dump(mode="json")

    def service_of(name: str) -> dict[str, Any]:
        vs = controller.config.service(name)
        if vs is None:
            raise ApiError(404, f"there is no virtual service {name}")
        return vs.model_dump(mode="json")

    async def revision() -> int | None:
        return await asyncio.to_thread(current_revision, controller)

    # --- the whole configuration -----------------------------------------------------------------

    @router.get("/config", summary="The running configuration and its revision", **answers(ConfigAnswer, 401))
    async def get_config(_: Principal = Depends(READ)) -> dict:
        return {"revision": await revision(), "config": model()}

    @router.put(
        "/config",
        summary="Apply a whole configuration (admin)",
        openapi_extra=REVISION_REQUIRED,
        **answers(ChangeAnswer, 400, 401, 403, 409, 428),
    )
    async def put_config(body: ConfigWrite, request: Request, principal: Principal = Depends(ADMIN)) -> JSONResponse:
        try:
            base = base_revision_of(request, body.base_revision)
        except ApiError as exc:
            return exc.response()
        if body.dry_run:
            result = await controller.changes.apply(data=body.config, origin=origin_of(request, principal),
                                                    message=body.message, kind="api", dry_run=True)  # fmt: skip
            return JSONResponse(result.as_dict(), status_code=result.http_status)

        def replace(data: dict[str, Any]) -> None:
            data.clear()
            data.update(body.config)

        return await writer.write(request, principal, base, replace, action="config.replace", target="config",
                                  message=body.message)  # fmt: skip

    # --- virtual services ------------------------------------------------------------------------

    @router.get("/virtual-services", summary="Every virtual service", **answers(ServicesAnswer, 401))
    async def list_services(_: Principal = Depends(READ)) -> dict:
        return {"revision": await revision(), "virtual_services": model()["virtual_services"]}

    @router.get("/virtual-services/{service}", summary="One virtual service", **answers(ServiceAnswer, 401, 404))
    async def get_service(service: str, _: Principal = Depends(READ)) -> JSONResponse:
        try:
            return JSONResponse({"revision": await revision(), "virtual_service": service_of(service)})
        except ApiError as exc:
            return exc.response()

    @router.post(
        "/virtual-services",
        status_code=200,
        summary="Add a virtual service (admin)",
        openapi_extra=REVISION_REQUIRED,
        **answers(ChangeAnswer, 400, 401, 403, 409, 428),
    )
    async def create_service(body: VirtualServiceWrite, request: Request, principal: Principal = Depends(ADMIN)) -> JSONResponse:
        def add(data: dict[str, Any]) -> None:
            name = _named(body.virtual_service, "virtual service")
            if any(vs.get("name") == name for vs in _services(data)):
                raise ApiError(409, f"virtual service {name} exists already: replace it with PUT /api/v1/virtual-services/{name}")
            _services(data).append(body.virtual_service)

        return await _write(writer, request, principal, body, add, "virtual-service.create",
                            str(body.virtual_service.get("name", "")))  # fmt: skip

    @router.put(
        "/virtual-services/{service}",
        summary="Replace a virtual service (admin)",
        openapi_extra=REVISION_REQUIRED,
        **answers(ChangeAnswer, 400, 401, 403, 404, 409, 428),
    )
    async def replace_service(service: str, body: VirtualServiceWrite, request: Request,
                              principal: Principal = Depends(ADMIN)) -> JSONResponse:  # fmt: skip
        def replace(data: dict[str, Any]) -> None:
            services = _services(data)
            index = find(services, service, "virtual service")
            item = dict(body.virtual_service)
            item.setdefault("name", service)
            services[index] = item

        return await _write(writer, request, principal, body, replace, "virtual-service.replace", service)

    @router.delete(
        "/virtual-services/{service}",
        summary="Delete a virtual service (admin)",
        openapi_extra=REVISION_REQUIRED,
        **answers(ChangeAnswer, 400, 401, 403, 404, 409, 428),
    )
    async def delete_service(service: str, request: Request, principal: Principal = Depends(ADMIN),
                             base_revision: int | None = BASE_QUERY) -> JSONResponse:  # fmt: skip
        def delete(data: dict[str, Any]) -> None:
            services = _services(data)
            del services[find(services, service, "virtual service")]

        return await _write(writer, request, principal, Write(base_revision=base_revision), delete,
                            "virtual-service.delete", service)  # fmt: skip

    # --- real servers ----------------------------------------------------------------------------

    @router.get(
        "/virtual-services/{service}/real-servers",
        summary="The real servers of a virtual service",
        **answers(RealServersAnswer, 401, 404),
    )
    async def list_real_servers(service: str, _: Principal = Depends(READ)) -> JSONResponse:
        try:
            return JSONResponse({"revision": await revision(), "real_servers": service_of(service)["real_servers"]})
        except ApiError as exc:
            return exc.response()

    @router.get(
        "/virtual-services/{service}/real-servers/{real_server}", summary="One real server", **answers(RealServerAnswer, 401, 404)
    )
    async def get_real_server(service: str, real_server: str, _: Principal = Depends(READ)) -> JSONResponse:
        try:
            servers = service_of(service)["real_servers"]
            found = servers[find(servers, real_server, f"real server in {service} called")]
        except ApiError as exc:
            return exc.response()
        return JSONResponse({"revision": await revision(), "real_server": found})

    @router.post(
        "/virtual-services/{service}/real-servers",
        summary="Add a real server (admin)",
        openapi_extra=REVISION_REQUIRED,
        **answers(ChangeAnswer, 400, 401, 403, 404, 409, 428),
    )
    async def add_real_server(service: str, body: RealServerWrite, request: Request,
                              principal: Principal = Depends(ADMIN)) -> JSONResponse:  # fmt: skip
        add = _add_item(service, "real_servers", "real server", body.real_server)
        return await _write(writer, request, principal, body, add, "real-server.create",
                            f"{service}/{body.real_server.get('name', '')}")  # fmt: skip

    @router.put(
        "/virtual-services/{service}/real-servers/{real_server}",
        summary="Replace a real server (admin)",
        openapi_extra=REVISION_REQUIRED,
        **answers(ChangeAnswer, 400, 401, 403, 404, 409, 428),
    )
    async def replace_real_server(service: str, real_server: str, body: RealServerWrite, request: Request,
                                  principal: Principal = Depends(ADMIN)) -> JSONResponse:  # fmt: skip
        replace = _replace_item(service, "real_servers", "real server", real_server, body.real_server)
        return await _write(writer, request, principal, body, replace, "real-server.replace", f"{service}/{real_server}")

    @router.delete(
        "/virtual-services/{service}/real-servers/{real_server}",
        summary="Delete a real server (admin)",
        openapi_extra=REVISION_REQUIRED,
        **answers(ChangeAnswer, 400, 401, 403, 404, 409, 428),
    )
    async def delete_real_server(service: str, real_server: str, request: Request, principal: Principal = Depends(ADMIN),
                                 base_revision: int | None = BASE_QUERY) -> JSONResponse:  # fmt: skip
        delete = _delete_item(service, "real_servers", "real server", real_server)
        return await _write(writer, request, principal, Write(base_revision=base_revision), delete, "real-server.delete",
                            f"{service}/{real_server}")  # fmt: skip

    async def _runtime(request: Request, principal: Principal, service: str, real_server: str, body: Write,
                       action: str, **change: Any) -> JSONResponse:  # fmt: skip
        """Runtime control (operator): the revision is optional here, but a stale one still gets 409."""
        try:
            base = base_revision_of(request, body.base_revision, required=False)
        except ApiError as exc:
            writer._audit(request, principal, action, f"{service}/{real_server}", exc.outcome.value, {"message": exc.message})
            return exc.response()
        result = await controller.changes.set_real_server(service, real_server, origin=origin_of(request, principal),
                                                          message=body.message, base_revision=base, action=action,
                                                          **change)  # fmt: skip
        return await writer.answer(result)

    @router.put("/virtual-services/{service}/real-servers/{real_server}/state",
                summary="Drain, halt or bring online a real server (operator)", openapi_extra=REVISION_OPTIONAL,
                **answers(ChangeAnswer, 400, 401, 403, 404, 409))  # fmt: skip
    async def set_state(service: str, real_server: str, body: StateWrite, request: Request,
                        principal: Principal = Depends(OPERATE)) -> JSONResponse:  # fmt: skip
        return await _runtime(request, principal, service, real_server, body, f"real-server.{body.state.value}",
                              state=body.state, every_service=body.all)  # fmt: skip

    @router.put("/virtual-services/{service}/real-servers/{real_server}/weight",
                summary="Set the weight of a real server (operator)", openapi_extra=REVISION_OPTIONAL,
                **answers(ChangeAnswer, 400, 401, 403, 404, 409))  # fmt: skip
    async def set_weight(service: str, real_server: str, body: WeightWrite, request: Request,
                         principal: Principal = Depends(OPERATE)) -> JSONResponse:  # fmt: skip
        return await _runtime(request, principal, service, real_server, body, "real-server.weight", weight=body.weight)

    # --- rules -----------------------------------------------------------------------------------

    @router.get(
        "/virtual-services/{service}/rules",
        summary="The rules of a virtual service, first match first",
        **answers(RulesAnswer, 401, 404),
    )
    async def list_rules(service: str, _: Principal = Depends(READ)) -> JSONResponse:
        try:
            return JSONResponse({"revision": await revision(), "rules": service_of(service)["rules"]})
        except ApiError as exc:
            return exc.response()

    @router.get("/virtual-services/{service}/rules/{rule}", summary="One rule", **answers(RuleAnswer, 401, 404))
    async def get_rule(service: str, rule: str, _: Principal = Depends(READ)) -> JSONResponse:
        try:
            rules = service_of(service)["rules"]
            return JSONResponse({"revision": await revision(), "rule": rules[find(rules, rule, f"rule in {service} called")]})
        except ApiError as exc:
            return exc.response()

    @router.post(
        "/virtual-services/{service}/rules",
        summary="Add a rule at the end, or at `position` (admin)",
        openapi_extra=REVISION_REQUIRED,
        **answers(ChangeAnswer, 400, 401, 403, 404, 409, 428),
    )
    async def add_rule(service: str, body: RuleWrite, request: Request, principal: Principal = Depends(ADMIN),
                       position: int | None = None) -> JSONResponse:  # fmt: skip
        add = _add_item(service, "rules", "rule", body.rule, position)
        return await _write(writer, request, principal, body, add, "rule.create", f"{service}/{body.rule.get('name', '')}")

    @router.put(
        "/virtual-services/{service}/rules/{rule}",
        summary="Replace a rule (admin)",
        openapi_extra=REVISION_REQUIRED,
        **answers(ChangeAnswer, 400, 401, 403, 404, 409, 428),
    )
    async def replace_rule(service: str, rule: str, body: RuleWrite, request: Request,
                           principal: Principal = Depends(ADMIN)) -> JSONResponse:  # fmt: skip
        replace = _replace_item(service, "rules", "rule", rule, body.rule)
        return await _write(writer, request, principal, body, replace, "rule.replace", f"{service}/{rule}")

    @router.delete(
        "/virtual-services/{service}/rules/{rule}",
        summary="Delete a rule (admin)",
        openapi_extra=REVISION_REQUIRED,
        **answers(ChangeAnswer, 400, 401, 403, 404, 409, 428),
    )
    async def delete_rule(service: str, rule: str, request: Request, principal: Principal = Depends(ADMIN),
                          base_revision: int | None = BASE_QUERY) -> JSONResponse:  # fmt: skip
        delete = _delete_item(service, "rules", "rule", rule)
        return await _write(writer, request, principal, Write(base_revision=base_revision), delete, "rule.delete",
                            f"{service}/{rule}")  # fmt: skip

    # --- health checks ---------------------------------------------------------------------------

    @router.get(
        "/virtual-services/{service}/health-check",
        summary="The health check of a virtual service",
        **answers(HealthCheckAnswer, 401, 404),
    )
    async def get_health_check(service: str, _: Principal = Depends(READ)) -> JSONResponse:
        try:
            return JSONResponse({"revision": await revision(), "health_check": service_of(service)["health_check"]})
        except ApiError as exc:
            return exc.response()

    @router.put(
        "/virtual-services/{service}/health-check",
        summary="Replace the health check of a virtual service (admin)",
        openapi_extra=REVISION_REQUIRED,
        **answers(ChangeAnswer, 400, 401, 403, 404, 409, 428),
    )
    async def put_health_check(service: str, body: HealthCheckWrite, request: Request,
                               principal: Principal = Depends(ADMIN)) -> JSONResponse:  # fmt: skip
        def replace(data: dict[str, Any]) -> None:
            _service(data, service)["health_check"] = body.health_check

        return await _write(writer, request, principal, body, replace, "health-check.replace", service)

    return router


async def _write(writer: Writer, request: Request, principal: Principal, body: Write, edit, action: str,
                 target: str) -> JSONResponse:  # fmt: skip
    try:
        base = base_revision_of(request, body.base_revision)
    except ApiError as exc:
        writer._audit(request, principal, action, target, "precondition-required" if exc.status == 428 else "bad-request",
                      {"message": exc.message})  # fmt: skip
        return exc.response()
    return await writer.write(request, principal, base, edit, action=action, target=target, message=body.message)
