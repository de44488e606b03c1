"""The WebUI's revision pages: the history, what each revision changed, and rollback."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..api.auth import Principal
from ..api.writes import origin_of
from ..change.result import Outcome
from ..store import StoreError
from ..store.history import revision_diff
from .context import controller_of, flash, page_principal, page_role, render

router = APIRouter(include_in_schema=False)

PAGE = 50


@router.get("/revisions", response_class=HTMLResponse)
async def revisions_page(
    request: Request, before: int | None = Query(None, ge=1), principal: Principal = Depends(page_principal)
) -> Response:
    store = controller_of(request).changes.store
    found = await asyncio.to_thread(store.list, PAGE, before)
    current = await asyncio.to_thread(store.current_id)
    older = found[-1].id if len(found) == PAGE else None
    return render(request, "revisions.html", principal, revisions=found, current=current, older=older)


@router.get("/revisions/{rev_id}", response_class=HTMLResponse)
async def revision_page(request: Request, rev_id: int, principal: Principal = Depends(page_principal)) -> Response:
    store = controller_of(request).changes.store
    secrets = controller_of(request).changes.secret_store()  # a changed secret is a change (without its value)
    revision = await asyncio.to_thread(store.get, rev_id, False)
    if revision is None:
        raise HTTPException(404, detail=await asyncio.to_thread(store.missing, rev_id))
    current = await asyncio.to_thread(store.current_id)
    try:
        changed = await asyncio.to_thread(revision_diff, store, None, rev_id, secrets)  # what this revision changed
    except StoreError:
        changed = None
    undo = None
    if current is not None and current != rev_id:
        try:
            undo = await asyncio.to_thread(revision_diff, store, current, rev_id, secrets)  # what a rollback would change
        except StoreError:
            undo = None
    return render(request, "revision.html", principal, revision=revision, current=current, changed=changed, undo=undo)


@router.post("/revisions/{rev_id}/rollback")
async def rollback(
    request: Request, rev_id: int, base_revision: str = Form(""), principal: Principal = Depends(page_role("admin"))
) -> Response:
    changes = controller_of(request).changes
    result = await changes.rollback(rev_id, origin=origin_of(request, principal), message="WebUI",
                                    base_revision=int(base_revision) if base_revision.isdigit() else -1)  # fmt: skip
    if result.outcome is Outcome.CONFLICT:
        current = await asyncio.to_thread(changes.store.current_id)
        rev = await asyncio.to_thread(changes.store.get, current, False) if current else None
        flash(request, principal, f"Not rolled back: the configuration was changed meanwhile by "
              f"{rev.author if rev else 'someone'} in revision {current}. Check the diff again.", "error")  # fmt: skip
        return RedirectResponse(f"/revisions/{rev_id}", status_code=303)
    ok = result.outcome in (Outcome.APPLIED, Outcome.UNCHANGED)
    detail = "; ".join([*result.messages, *(str(p) for p in result.problems)])
    flash(request, principal, result.message + (f" ({detail})" if detail else ""), "ok" if ok else "error")
    target = f"/revisions/{result.revision.id}" if ok and result.revision else f"/revisions/{rev_id}"
    return RedirectResponse(target, status_code=303)
