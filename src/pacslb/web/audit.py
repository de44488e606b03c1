"""The WebUI's /audit page (admin only): the audit log, latest first, filtered by user, object (a substring) and time
(from/to, UTC), a bounded page at a time (older pages follow the id of the last row shown)."""

from __future__ import annotations

import asyncio
import datetime as dt
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from ..api.auth import Principal
from .context import page_role, render
from .fields import PlacedProblems

router = APIRouter(include_in_schema=False)
ADMIN = page_role("admin")
PAGE_SIZES = (25, 50, 100, 200)
MAX_PAGE_SIZE = PAGE_SIZES[-1]
TIME_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d")


def parse_time(text: str) -> float | None:
    """A time typed in the filter (UTC, as the page shows every time) as Unix seconds; None when empty.
    ValueError naming the forms accepted otherwise (pure)."""
    text = text.strip().removesuffix("UTC").strip()
    if not text:
        return None
    for form in TIME_FORMATS:
        try:
            return dt.datetime.strptime(text, form).replace(tzinfo=dt.timezone.utc).timestamp()
        except ValueError:
            continue
    raise ValueError("not a time: use YYYY-MM-DD HH:MM (UTC), e.g. 2026-01-31 14:05")


def time_filters(since: str, until: str) -> tuple[float | None, float | None, PlacedProblems]:
    """The from/to filters as Unix seconds, with each problem beside its field (pure). A bare date in 'to' means
    the end of that day."""
    placed = PlacedProblems()
    found: dict[str, float | None] = {}
    for name, text in (("since", since), ("until", until)):
        try:
            found[name] = parse_time(text)
        except ValueError as exc:
            placed.by_field[name] = [str(exc)]
            found[name] = None
    start, end = found["since"], found["until"]
    if end is not None and len(until.strip()) == 10:
        end += 86399.999
    if start is not None and end is not None and start > end:
        placed.by_field["until"] = ["'to' is before 'from': swap them"]
    return start, end, placed


@router.get("/audit", response_class=HTMLResponse)
async def audit_page(
    request: Request,
    user: str = Query("", max_length=200),
    target: str = Query("", max_length=500),
    since: str = Query("", max_length=40),
    until: str = Query("", max_length=40),
    size: int = Query(50, ge=1, le=MAX_PAGE_SIZE),
    before: int | None = Query(None, ge=1, le=2**53),
    principal: Principal = Depends(ADMIN),
) -> Response:
    auth = request.app.state.auth
    start, end, placed = time_filters(since, until)
    events, older = [], None
    if not placed.any:
        await asyncio.to_thread(auth.flush_throttled)  # the counts of throttled logins not written yet
        events = await asyncio.to_thread(auth.audit_log.list, size + 1, before, user.strip() or None, None, None,
                                         target.strip() or None, start, end)  # fmt: skip
        if len(events) > size:
            events = events[:size]
            older = events[-1].id
    filters = {"user": user, "target": target, "since": since, "until": until, "size": size}
    kept = {k: v for k, v in filters.items() if v not in ("", None)}
    return render(request, "audit.html", principal, status_code=422 if placed.any else 200, events=events, placed=placed,
                  filters=filters, sizes=PAGE_SIZES, before=before,
                  older_url=f"/audit?{urlencode({**kept, 'before': older})}" if older else None,
                  newest_url=f"/audit?{urlencode(kept)}" if before else None)  # fmt: skip


__all__ = ["router", "parse_time", "time_filters"]
