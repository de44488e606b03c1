"""The balance service's REST API (and its page, web.py): next case, readers, waiting exams, assignments, fairness.

Every handler is `async def`, so it runs on the service's one event loop between HL7 messages, never beside them.
"""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Query, Response
from fastapi.responses import HTMLResponse

from .scheduler import BalanceError
from .service import BalanceService
from .web import page


def make_app(service: BalanceService) -> FastAPI:
    """The ASGI app over one service."""
    app = FastAPI(title="pacslb balance", docs_url=None, redoc_url=None)

    @app.post("/api/readers/{reader}/next")
    async def next_case(reader: str):
        """Open the reader's next case: the exam, and why it went to them; 204 when there is nothing for them."""
        try:
            case = service.next_case(reader)
        except BalanceError as exc:
            raise HTTPException(404, str(exc)) from None
        return case if case is not None else Response(status_code=204)

    @app.get("/api/readers")
    async def readers():
        """Readers, whether they work now, their effort assigned against what the schedule earned, and their lists."""
        return service.readers_view()

    @app.get("/api/readers/{reader}/list")
    async def reader_list(reader: str):
        for item in service.readers_view():
            if item["name"] == reader:
                return item["list"]
        raise HTTPException(404, f"unknown reader {reader!r}")

    @app.get("/api/waiting")
    async def waiting():
        """Exams on no list, in reading order (escalated first)."""
        return service.waiting_view()

    @app.get("/api/assignments")
    async def assignments(accession: str | None = None, limit: int = Query(200, ge=1, le=5000)):
        """Recorded assignments, newest first, each with its reason."""
        return service.store.assignments(accession, limit)

    @app.get("/api/fairness")
    async def fairness(hours: int = Query(24, ge=1, le=168)):
        """Jain's index of effort per hour worked, hour by hour."""
        return [{"at": at, "jain": value} for at, value in service.fairness_view(hours)]

    @app.get("/api/counts")
    async def counts():
        return service.store.counts()

    @app.get("/", response_class=HTMLResponse)
    async def index():
        return page(service)

    return app
