"""The API explorer at /api/docs (Swagger UI) from the package itself: no CDN, so it works offline.

swagger-ui-dist (Apache-2.0, vendored in api/swagger/ with its LICENSE and NOTICE; THIRD-PARTY.md says which
version and from where) is served under /api/docs/assets/, like the page and the OpenAPI document only to a
logged-in user or an API key (401 otherwise): the explorer describes every route, which is for users only.
The page has no inline script (init.js starts the explorer), so its Content-Security-Policy is the strict one.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse, HTMLResponse

from .auth import Principal, current_principal

ASSETS_DIR = Path(__file__).parent / "swagger"
ASSETS_URL = "/api/docs/assets"
# name -> media type: the only files served (nothing else from the directory, no path from the request)
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "init.js": "text/javascript; charset=utf-8",
}
# Swagger UI sets element styles from script (allowed) and draws its icons as data: images; it fetches the
# OpenAPI document from this origin only.
DOCS_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")  # fmt: skip

PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>pacslb management API</title>
<link rel="stylesheet" href="{ASSETS_URL}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS_URL}/swagger-ui-bundle.js"></script>
<script src="{ASSETS_URL}/init.js"></script>
</body>
</html>
"""

router = APIRouter(include_in_schema=False)


def docs_page() -> HTMLResponse:
    """The explorer's page: the vendored assets, the strict CSP."""
    page = HTMLResponse(PAGE)
    page.headers["Content-Security-Policy"] = DOCS_CSP
    page.headers["Cache-Control"] = "no-store"
    return page


@router.get(ASSETS_URL + "/{name}")
async def docs_asset(name: str, _: Principal = Depends(current_principal)) -> FileResponse:
    """One of the explorer's files, to a logged-in user; cached privately for a day (they change with pacslb only)."""
    media_type = ASSETS.get(name)
    if media_type is None:
        raise HTTPException(404, detail=f"no such file of the API explorer: {name}")
    return FileResponse(ASSETS_DIR / name, media_type=media_type, headers={"Cache-Control": "private, max-age=86400"})


__all__ = ["ASSETS", "ASSETS_DIR", "ASSETS_URL", "docs_page", "router"]
