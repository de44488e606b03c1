"""The management app: the REST API under /api/v1 (OpenAPI at /api/openapi.json), /metrics, and the WebUI.

`create_management_app(appliance, auth)` takes the appliance's facade (pacslb.appliance.Facade, or a
stand-in with its surface: `config`, `base_dir`, `paths`, `changes`, `status()`) and the AuthService. The
WebUI is added beside it by the composition root (pacslb.web.mount_web); the API does not know it.

Every route but POST /api/v1/login and GET /api/v1/health needs credentials (auth.py), the OpenAPI
document (/api/openapi.json) and its browsable page (/api/docs) included. Request bodies are limited
before any parsing (limits.py); every answer carries SECURITY_HEADERS, a strict Content-Security-Policy
among them (the WebUI has no inline script or style; nor has /api/docs, whose assets come from the package: apidocs.py).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse

from ..request_limits import JsonBodyLimit
from . import API_V1, contract
from .apidocs import docs_page
from .apidocs import router as apidocs_router
from .auth import AuthService, Principal, current_principal
from .limits import RESTORE_LIMIT, BodyLimit
from .metrics import ControllerMetrics
from .routes_backup import backup_router
from .routes_certs import certificates_router
from .routes_cluster import cluster_router
from .routes_config import config_router
from .routes_gslb import gslb_router
from .routes_observe import metrics_router, observe_router
from .routes_persistence import persistence_router
from .routes_users import users_router
from .routes_verify import verify_router
from .routes_waf import waf_router
from .writes import Writer

log = logging.getLogger("pacslb.api")

UNAUTHENTICATED = frozenset({("POST", f"{API_V1}/login"), ("GET", f"{API_V1}/health")})

# The WebUI loads its own script and style sheet only, and fetches its own fragments: nothing inline, nothing
# from elsewhere, no framing, no form posted elsewhere. A script injected into a page would not run.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")  # fmt: skip

# On every answer of the management app (HTTPS only: HSTS is safe to send).
SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=31536000",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
}
OPENAPI_URL = "/api/openapi.json"
DOCS_URL = "/api/docs"


def metrics_socket(controller: Any) -> Path:
    """HAProxy's Prometheus exporter frontend (rendered on a Unix socket beside its admin socket)."""
    return controller.paths.haproxy_prometheus_socket


def create_management_app(
    controller: Any,
    auth: AuthService,
    *,
    controller_log: Path | None = None,
    metrics: ControllerMetrics | None = None,
) -> FastAPI:
    metrics = metrics or ControllerMetrics()
    app = FastAPI(
        title="pacslb management API",
        description="Virtual services, real servers, rules, health checks, certificates, revisions, status and logs of "
        "one pacslb appliance. Every route but POST /api/v1/login and GET /api/v1/health needs a session cookie "
        "(with its CSRF token on unsafe requests) or an API key (Authorization: Bearer); this document too.",
        version="1",
        docs_url=None,  # served below, behind credentials
        redoc_url=None,
        openapi_url=None,
    )
    app.state.auth = auth
    app.state.controller = controller
    app.state.metrics = metrics
    writer = Writer(controller, auth)
    writer.on_applied = metrics.change
    app.state.writer = writer
    auth.on_failed_login = metrics.login_failed
    # innermost of the middleware (added first): bodies are limited before any route or form parser reads them,
    # and its 413 still gets the security headers and the request count of count_and_harden
    # inside BodyLimit, which holds each path to its own size (up to RESTORE_LIMIT): this one refuses JSON nested
    # too deep (422); its size bound is the largest of BodyLimit's, not WRITE_LIMIT, or a backup over 8 MiB
    # would meet a 413 naming the wrong limit
    app.add_middleware(JsonBodyLimit, max_bytes=RESTORE_LIMIT)
    app.add_middleware(BodyLimit)

    @app.middleware("http")
    async def count_and_harden(request: Request, call_next):
        response = await call_next(request)
        metrics.request(response.status_code)
        for name, value in SECURITY_HEADERS.items():  # pages may set their own (a CSP, say): theirs win
            response.headers.setdefault(name, value)
        if request.url.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")  # tokens and state: never from a cache
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # the same shape as a model problem: a path and a message each, for the WebUI to show beside fields
        problems = [
            {"path": ".".join(str(p) for p in e["loc"] if p != "body"), "message": e["msg"], "severity": "error"}
            for e in exc.errors()
        ]
        return JSONResponse({"outcome": "invalid", "message": "the request is not valid: nothing was changed",
                             "problems": problems}, status_code=422)  # fmt: skip

    @app.get(OPENAPI_URL, include_in_schema=False)
    async def openapi_document(_: Principal = Depends(current_principal)) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get(DOCS_URL, include_in_schema=False)
    async def openapi_page(_: Principal = Depends(current_principal)) -> HTMLResponse:
        return docs_page()

    app.include_router(apidocs_router)  # the explorer's script and style, from the package (api/swagger/)

    app.include_router(users_router(auth), prefix=API_V1)
    app.include_router(observe_router(writer, metrics, controller_log), prefix=API_V1)
    app.include_router(config_router(writer), prefix=API_V1)
    app.include_router(certificates_router(writer), prefix=API_V1)
    app.include_router(gslb_router(controller), prefix=API_V1)  # GSLB (issue 19)
    app.include_router(cluster_router(controller), prefix=API_V1)  # the cluster (issue 20)
    app.include_router(backup_router(controller, auth), prefix=API_V1)
    if getattr(controller, "alerts", None) is not None:  # the appliance's Facade has them; a test's stand-in may not
        from .routes_alerts import alerts_router

        app.include_router(alerts_router(controller.alerts), prefix=API_V1)
    app.include_router(waf_router(writer), prefix=API_V1)  # the WAF tier (issue 18)
    app.include_router(verify_router(controller), prefix=API_V1)
    app.include_router(persistence_router(controller), prefix=API_V1)  # clear a persistence table (issue 15)
    app.include_router(metrics_router(controller, metrics, metrics_socket(controller)))
    contract.install(app, UNAUTHENTICATED)  # the error body, every status declared, 405's Allow (docs/api.md)
    return app
