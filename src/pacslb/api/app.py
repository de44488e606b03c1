"""The management app: the REST API under /api/v1 (OpenAPI at /api/openapi.json), /metrics, and the WebUI.

`create_management_app(appliance, auth)` takes the appliance's facade (pacslb.appliance.Facade, or a
stand-in with its surface: `config`, `base_dir`, `paths`, `changes`, `status()`) and the AuthService. The
WebUI is added beside it by the composition root (pacslb.web.mount_web); the API does not know it.

Every route but POST /api/v1/login and GET /api/v1/health needs credentials (auth.py).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from . import API_V1
from .auth import AuthService
from .metrics import ControllerMetrics
from .routes_certs import certificates_router
from .routes_config import config_router
from .routes_observe import metrics_router, observe_router
from .routes_users import users_router
from .writes import Writer

log = logging.getLogger("pacslb.api")

UNAUTHENTICATED = frozenset({("POST", f"{API_V1}/login"), ("GET", f"{API_V1}/health")})

# On every answer of the management app (HTTPS only: HSTS is safe to send).
SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=31536000",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


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
        "(with its CSRF token on unsafe requests) or an API key (Authorization: Bearer).",
        version="1",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.auth = auth
    app.state.controller = controller
    app.state.metrics = metrics
    writer = Writer(controller, auth)
    writer.on_applied = metrics.change
    app.state.writer = writer
    auth.on_failed_login = metrics.login_failed

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

    app.include_router(users_router(auth), prefix=API_V1)
    app.include_router(observe_router(writer, metrics, controller_log), prefix=API_V1)
    app.include_router(config_router(writer), prefix=API_V1)
    app.include_router(certificates_router(writer), prefix=API_V1)
    app.include_router(metrics_router(controller, metrics, metrics_socket(controller)))
    return app
