"""The WebUI's configuration pages: virtual services, their health checks, real servers and rules.

Every form carries the revision it was based on (`base_revision`). A submit is an edit of the
configuration's JSON handed to the management API's Writer (pacslb.api.writes), the one path of every
configuration write: under its lock it compares the base revision with the current one, applies the
edited configuration through the change front door (change/service.py) (author = the logged-in user) and audits the
outcome. Then:
  - stale (another change was applied since): the form comes back with the user's values and
    "changed meanwhile by X in revision N"; nothing is overwritten;
  - invalid: the model's problems come back beside their fields (fields.py), the values kept;
  - refused by an engine: the previous configuration serves, and the form says why;
  - applied: a redirect to the service's page, with the outcome as a flash message.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..api.auth import CSRF_FIELD, Principal
from ..api.writes import find
from ..change.result import Outcome
from ..model import Config, Mode, Problem
from . import forms
from .context import controller_of, flash, page_principal, page_role, render
from .fields import PlacedProblems, place_problems

router = APIRouter(include_in_schema=False)


def _service_index(config: Config, name: str) -> int:
    for i, vs in enumerate(config.virtual_services):
        if vs.name == name:
            return i
    raise HTTPException(404, detail=f"there is no virtual service {name}")


def _item_index(items: list, name: str, what: str, service: str) -> int:
    for i, item in enumerate(items):
        if item.name == name:
            return i
    raise HTTPException(404, detail=f"virtual service {service} has no {what} {name}")


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str) and k != CSRF_FIELD}


@dataclass
class Submitted:
    """What a submit came to: applied (redirect), or the form again with why."""

    outcome: str = ""  # applied | unchanged | invalid | refused | not-found | conflict (stale)
    message: str = ""
    messages: list[str] = field(default_factory=list)
    stale: str | None = None  # "changed meanwhile by X in revision N"
    placed: PlacedProblems = field(default_factory=PlacedProblems)
    status_code: int = 200

    @property
    def applied(self) -> bool:
        return self.outcome in (Outcome.APPLIED.value, Outcome.UNCHANGED.value)

    @property
    def notice(self) -> list[str]:
        """Lines for the top of the form."""
        if self.stale:
            return [self.stale]
        if self.applied or self.outcome == Outcome.INVALID.value:
            return [] if self.applied else [self.message]
        return [self.message, *self.messages]


async def stale_notice(request: Request, base: str) -> str | None:
    """ "changed meanwhile by X in revision N" when `base` is no longer the current revision, else None."""
    store = controller_of(request).changes.store
    current = await asyncio.to_thread(store.current_id)
    if str(current or "") == base:
        return None
    rev = await asyncio.to_thread(store.get, current, False) if current else None
    who = rev.author if rev else "someone"
    return (f"The configuration was changed meanwhile by {who} in revision {current} (this form was based on "
            f"revision {base or 'none'}). Nothing was overwritten: check the current values, then submit again.")  # fmt: skip


async def submit(
    request: Request, principal: Principal, form: Mapping[str, str], edit: Callable[[dict[str, Any]], Any],
    message: str, prefixes: list[str], fields: tuple[forms.Field, ...], action: str, target: str,
) -> Submitted:  # fmt: skip
    """Apply `edit` (a change of the configuration's JSON, in place) through the management API's Writer: it
    checks the base revision and applies under one lock, through the change front door (change/service.py), and audits the outcome."""
    base = form.get("base_revision", "").strip()
    if not base.isdigit():
        return Submitted(outcome="conflict", stale=await stale_notice(request, base) or "This form names no revision.",
                         status_code=409)  # fmt: skip
    writer = request.app.state.writer
    response = await writer.write(request, principal, int(base), edit, action=action, target=target,
                                  message=f"{message} (WebUI)")  # fmt: skip
    body = json.loads(response.body)
    outcome = body.get("outcome", "")
    if outcome == "conflict":
        notice = await stale_notice(request, base)
        return Submitted(outcome=outcome, stale=notice or body.get("message", ""), status_code=409)
    problems = [Problem(p.get("path", ""), p.get("message", ""), p.get("severity", "error")) for p in body.get("problems") or []]
    return Submitted(outcome=outcome, message=body.get("message", ""), messages=body.get("messages") or [],
                     placed=place_problems(problems, prefixes, [f.name for f in fields]),
                     status_code=response.status_code)  # fmt: skip


def _done(request: Request, principal: Principal, submitted: Submitted, target: str) -> Response:
    flash(request, principal, submitted.message, "ok")
    return RedirectResponse(target, status_code=303)


# --- pages ---------------------------------------------------------------------------------------


@router.get("/services", response_class=HTMLResponse)
async def services_page(request: Request, principal: Principal = Depends(page_principal)) -> Response:
    controller = controller_of(request)
    return render(request, "services.html", principal, services=controller.config.virtual_services)


async def _current_revision(request: Request) -> int | None:
    return await asyncio.to_thread(controller_of(request).changes.store.current_id)


def _service_context(config: Config, index: int) -> dict[str, Any]:
    vs = config.virtual_services[index]
    data = vs.model_dump(mode="json")
    backend_only = [s.name for s in config.virtual_services if s.mode is Mode.BACKEND_ONLY]
    return {
        "vs": vs,
        "vs_fields": forms.VIRTUAL_SERVICE_FIELDS,
        "vs_values": forms.values_of(data, forms.VIRTUAL_SERVICE_FIELDS),
        "vs_placed": PlacedProblems(),
        "hc_fields": forms.HEALTH_CHECK_FIELDS,
        "hc_values": forms.values_of(data["health_check"], forms.HEALTH_CHECK_FIELDS),
        "hc_placed": PlacedProblems(),
        "backend_only": backend_only,
        "notice": [],
        "notice_for": None,
    }


@router.get("/services/new", response_class=HTMLResponse)
async def new_service_page(request: Request, principal: Principal = Depends(page_role("admin"))) -> Response:
    values = forms.values_of({"mode": "layer7-http", "persistence": {"type": "none"}}, forms.VIRTUAL_SERVICE_FIELDS)
    return render(request, "form.html", principal, title="New virtual service", action="/services/new",
                  fields=forms.VIRTUAL_SERVICE_FIELDS, values=values, placed=PlacedProblems(), notice=[], variant="persistence.type",
                  base_revision=await _current_revision(request), back="/services")  # fmt: skip


@router.post("/services/new", response_class=HTMLResponse)
async def new_service(request: Request, principal: Principal = Depends(page_role("admin"))) -> Response:
    form = await _form(request)
    vs = forms.virtual_service_data(form, {"health_check": {"type": "none"}})
    name = str(vs.get("name", ""))
    index = len(controller_of(request).config.virtual_services)

    def edit(data: dict[str, Any]) -> None:
        data["virtual_services"].append(vs)

    submitted = await submit(request, principal, form, edit, f"add virtual service {name}",
                             [f"virtual_services[{name}]", f"virtual_services[{index}]"], forms.VIRTUAL_SERVICE_FIELDS,
                             "virtual-service.create", name)  # fmt: skip
    if submitted.applied:
        return _done(request, principal, submitted, f"/services/{name}")
    return render(request, "form.html", principal, status_code=submitted.status_code, title="New virtual service",
                  action="/services/new", fields=forms.VIRTUAL_SERVICE_FIELDS, values=form, placed=submitted.placed,
                  variant="persistence.type", notice=submitted.notice, back="/services",
                  base_revision=await _current_revision(request) if submitted.stale else form.get("base_revision"))  # fmt: skip


@router.get("/services/{service}", response_class=HTMLResponse)
async def service_page(request: Request, service: str, principal: Principal = Depends(page_principal)) -> Response:
    config: Config = controller_of(request).config
    context = _service_context(config, _service_index(config, service))
    return render(request, "service.html", principal, base_revision=await _current_revision(request), **context)


async def _service_form_again(request: Request, principal: Principal, service: str, form: dict[str, str],
                              submitted: Submitted, which: str) -> Response:  # fmt: skip
    config: Config = controller_of(request).config
    context = _service_context(config, _service_index(config, service))
    context.update({f"{which}_values": form, f"{which}_placed": submitted.placed, "notice": submitted.notice,
                    "notice_for": which})  # fmt: skip
    return render(request, "service.html", principal, status_code=submitted.status_code,
                  base_revision=await _current_revision(request) if submitted.stale else form.get("base_revision"),
                  **context)  # fmt: skip


@router.post("/services/{service}", response_class=HTMLResponse)
async def edit_service(request: Request, service: str, principal: Principal = Depends(page_role("admin"))) -> Response:
    form = await _form(request)
    config: Config = controller_of(request).config
    index = _service_index(config, service)
    name = form.get("name", "").strip()

    def edit(data: dict[str, Any]) -> None:
        services = data["virtual_services"]
        at = find(services, service, "virtual service")
        services[at] = forms.virtual_service_data(form, services[at])

    submitted = await submit(request, principal, form, edit, f"edit virtual service {service}",
                             [f"virtual_services[{name}]", f"virtual_services[{index}]"], forms.VIRTUAL_SERVICE_FIELDS,
                             "virtual-service.replace", service)  # fmt: skip
    if submitted.applied:
        return _done(request, principal, submitted, f"/services/{name}")
    if submitted.outcome == "not-found":
        raise HTTPException(404, detail=submitted.message)
    return await _service_form_again(request, principal, service, form, submitted, "vs")


@router.post("/services/{service}/health-check", response_class=HTMLResponse)
async def edit_health_check(request: Request, service: str, principal: Principal = Depends(page_role("admin"))) -> Response:
    form = await _form(request)
    config: Config = controller_of(request).config
    index = _service_index(config, service)
    check = forms.health_check_data(form)

    def edit(data: dict[str, Any]) -> None:
        data["virtual_services"][find(data["virtual_services"], service, "virtual service")]["health_check"] = check

    prefixes = [f"virtual_services[{service}].health_check", f"virtual_services[{index}].health_check"]
    submitted = await submit(request, principal, form, edit, f"health check of {service}", prefixes,
                             forms.HEALTH_CHECK_FIELDS, "health-check.replace", service)  # fmt: skip
    if submitted.applied:
        return _done(request, principal, submitted, f"/services/{service}#health-check")
    return await _service_form_again(request, principal, service, form, submitted, "hc")


@router.post("/services/{service}/delete", response_class=HTMLResponse)
async def delete_service(request: Request, service: str, principal: Principal = Depends(page_role("admin"))) -> Response:
    form = await _form(request)

    def edit(data: dict[str, Any]) -> None:
        del data["virtual_services"][find(data["virtual_services"], service, "virtual service")]

    submitted = await submit(request, principal, form, edit, f"delete virtual service {service}", [], (),
                             "virtual-service.delete", service)  # fmt: skip
    if submitted.applied:
        return _done(request, principal, submitted, "/services")
    problems = submitted.notice + submitted.placed.elsewhere + submitted.placed.form
    flash(request, principal, f"{service} was not deleted: " + "; ".join(problems), "error")
    return RedirectResponse(f"/services/{service}", status_code=303)


# --- real servers and rules: one generic item form ---------------------------------------------


@dataclass(frozen=True)
class ItemKind:
    key: str  # the list's field in a virtual service
    path: str  # its URL part
    what: str  # in words
    fields: tuple[forms.Field, ...]
    convert: Any  # (form, base) -> data
    defaults: dict[str, Any]
    variant: str = ""  # the field that chooses which other fields apply


REAL_SERVERS = ItemKind("real_servers", "real-servers", "real server", forms.REAL_SERVER_FIELDS, forms.real_server_data,
                        {"weight": 100, "state": "online", "max_connections": 0})  # fmt: skip
RULES = ItemKind("rules", "rules", "rule", forms.RULE_FIELDS, forms.rule_data, {"action": "use_service"}, "action")
KINDS = {k.path: k for k in (REAL_SERVERS, RULES)}


def _kind(path: str) -> ItemKind:
    kind = KINDS.get(path)
    if kind is None:
        raise HTTPException(404, detail=f"no such list '{path}': choose real-servers or rules")
    return kind


def _item_page(request, principal, kind: ItemKind, service: str, item: str | None, values, placed, notice, base_revision,
               status_code: int = 200, backend_only=()) -> Response:  # fmt: skip
    action = f"/services/{service}/{kind.path}/" + (f"{item}/edit" if item else "new")
    title = f"{service}: " + (f"{kind.what} {item}" if item else f"new {kind.what}")
    return render(request, "form.html", principal, status_code=status_code, title=title, action=action,
                  fields=kind.fields, values=values, placed=placed, notice=notice, base_revision=base_revision,
                  back=f"/services/{service}", backend_only=list(backend_only), variant=kind.variant,
                  delete=f"/services/{service}/{kind.path}/{item}/delete" if item else None)  # fmt: skip


def _backend_only(config: Config) -> list[str]:
    return [s.name for s in config.virtual_services if s.mode is Mode.BACKEND_ONLY]


@router.get("/services/{service}/{kind_path}/new", response_class=HTMLResponse)
async def new_item_page(request: Request, service: str, kind_path: str,
                        principal: Principal = Depends(page_role("admin"))) -> Response:  # fmt: skip
    kind = _kind(kind_path)
    config: Config = controller_of(request).config
    _service_index(config, service)
    values = forms.values_of(kind.defaults, kind.fields)
    values.update({k: str(v) for k, v in kind.defaults.items()})
    return _item_page(request, principal, kind, service, None, values, PlacedProblems(), [],
                      await _current_revision(request), backend_only=_backend_only(config))  # fmt: skip


@router.get("/services/{service}/{kind_path}/{item}/edit", response_class=HTMLResponse)
async def edit_item_page(request: Request, service: str, kind_path: str, item: str,
                         principal: Principal = Depends(page_principal)) -> Response:  # fmt: skip
    kind = _kind(kind_path)
    config: Config = controller_of(request).config
    vs = config.virtual_services[_service_index(config, service)]
    items = getattr(vs, kind.key)
    found = items[_item_index(items, item, kind.what, service)]
    values = forms.values_of(found.model_dump(mode="json"), kind.fields)
    return _item_page(request, principal, kind, service, item, values, PlacedProblems(), [],
                      await _current_revision(request), backend_only=_backend_only(config))  # fmt: skip


async def _save_item(request: Request, principal: Principal, kind: ItemKind, service: str, item: str | None) -> Response:
    form = await _form(request)
    config: Config = controller_of(request).config
    vs = config.virtual_services[_service_index(config, service)]
    existing = getattr(vs, kind.key)
    position = len(existing) if item is None else _item_index(existing, item, kind.what, service)
    name = form.get("name", "").strip()

    def edit(data: dict[str, Any]) -> None:
        items = data["virtual_services"][find(data["virtual_services"], service, "virtual service")].setdefault(kind.key, [])
        if item is None:
            items.append(kind.convert(form, {}))
        else:
            at = find(items, item, f"{kind.what} of {service} called")
            items[at] = kind.convert(form, items[at])

    prefixes = [f"virtual_services[{service}].{kind.key}[{name}]", f"virtual_services[{service}].{kind.key}[{position}]"]
    verb = f"edit {kind.what} {item}" if item else f"add {kind.what} {name}"
    action = f"{kind.what.replace(' ', '-')}.{'replace' if item else 'create'}"
    submitted = await submit(request, principal, form, edit, f"{verb} of {service}", prefixes, kind.fields, action,
                             f"{service}/{item or name}")  # fmt: skip
    if submitted.applied:
        return _done(request, principal, submitted, f"/services/{service}#{kind.path}")
    if submitted.outcome == "not-found":
        raise HTTPException(404, detail=submitted.message)
    base_revision = await _current_revision(request) if submitted.stale else form.get("base_revision")
    return _item_page(request, principal, kind, service, item, form, submitted.placed, submitted.notice, base_revision,
                      status_code=submitted.status_code, backend_only=_backend_only(config))  # fmt: skip


@router.post("/services/{service}/{kind_path}/new", response_class=HTMLResponse)
async def new_item(request: Request, service: str, kind_path: str,
                   principal: Principal = Depends(page_role("admin"))) -> Response:  # fmt: skip
    return await _save_item(request, principal, _kind(kind_path), service, None)


@router.post("/services/{service}/{kind_path}/{item}/edit", response_class=HTMLResponse)
async def edit_item(request: Request, service: str, kind_path: str, item: str,
                    principal: Principal = Depends(page_role("admin"))) -> Response:  # fmt: skip
    return await _save_item(request, principal, _kind(kind_path), service, item)


@router.post("/services/{service}/{kind_path}/{item}/delete", response_class=HTMLResponse)
async def delete_item(request: Request, service: str, kind_path: str, item: str,
                      principal: Principal = Depends(page_role("admin"))) -> Response:  # fmt: skip
    kind = _kind(kind_path)
    form = await _form(request)

    def edit(data: dict[str, Any]) -> None:
        items = data["virtual_services"][find(data["virtual_services"], service, "virtual service")].get(kind.key, [])
        del items[find(items, item, f"{kind.what} of {service} called")]

    submitted = await submit(request, principal, form, edit, f"delete {kind.what} {item} of {service}", [], (),
                             f"{kind.what.replace(' ', '-')}.delete", f"{service}/{item}")  # fmt: skip
    if submitted.applied:
        return _done(request, principal, submitted, f"/services/{service}#{kind.path}")
    problems = submitted.notice + submitted.placed.elsewhere + submitted.placed.form
    flash(request, principal, f"{kind.what} {item} was not deleted: " + "; ".join(problems), "error")
    return RedirectResponse(f"/services/{service}#{kind.path}", status_code=303)
