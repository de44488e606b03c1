"""The management API as a subsystem of the appliance: uvicorn over HTTPS inside the controller's event loop.

At start it opens the users and audit stores (creating the first admin with a one-time password on a
fresh state directory), makes a self-signed certificate when none is configured (kept in the state
directory for the next starts), binds settings.management.address:port and serves
`create_management_app`. With settings.management.metrics_address, a second plain-HTTP server
serves /metrics there without authentication.

A management address that cannot be bound (the port is taken) does not stop the appliance: the traffic
engines serve on, the error is logged and the bind is tried again every RETRY_SECONDS.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import socket
import ssl
import sys
from pathlib import Path
from typing import Any, Callable

from ..model import Config
from ..model.files import MAX_PEM_BYTES, Problem, read_named_file
from ..serving import InLoopServer, SubsystemError
from ..store import StoreError
from ..store.audit import AuditLog
from ..store.users import UserStore
from . import state
from .auth import AuthService
from .metrics import ControllerMetrics

log = logging.getLogger("pacslb.api")

RETRY_SECONDS = 10.0


def ensure_certificate(root: Path, address: str) -> Path:
    """The self-signed certificate of the management API (made once, then kept)."""
    from .. import pki

    path = state.self_signed_certificate(root)
    if path.exists():
        return path
    names = ["127.0.0.1", "::1", "localhost", socket.gethostname()]
    try:
        if not ipaddress.ip_address(address).is_unspecified and address not in names:
            names.append(address)
    except ValueError:
        pass
    issued = pki.self_signed("pacslb management", names, days=825)
    pki.write_pem(path, issued.bundle(), private=True)
    log.info("made a self-signed certificate for the management API: %s (set settings.management.certificate "
             "to use your own)", path)  # fmt: skip
    return path


def bind(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if address == "::" else 1)
        sock.bind((address, port))
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def url_of(sock: socket.socket, scheme: str = "https") -> str:
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    return f"{scheme}://[{host}]:{port}/" if ":" in host else f"{scheme}://{host}:{port}/"


def _uvicorn(app: Any, sock: socket.socket, certfile: Path | None) -> InLoopServer:
    """The management API's uvicorn on a bound socket, inside the running loop."""
    return InLoopServer(
        app,
        sock,
        ssl_certfile=str(certfile) if certfile else None,
        ssl_ciphers="ECDHE+AESGCM:ECDHE+CHACHA20",
        ssl_version=ssl.PROTOCOL_TLS_SERVER,
        proxy_headers=False,  # reached directly: never trust X-Forwarded-For for the audit log
        server_header=False,
    )


class ManagementServer:
    name = "management API"

    def __init__(self, appliance: Any, extend: Callable[[Any], None] | None = None) -> None:
        self.controller = appliance  # the facade (pacslb.appliance.Facade): paths, the running model, changes, status
        self.extend = extend  # adds what is served beside the API (the WebUI)
        self.root: Path = appliance.paths.root
        self.metrics = ControllerMetrics()
        self.auth: AuthService | None = None
        self.app: Any = None
        self.url: str | None = None
        self._servers: list[InLoopServer] = []
        self._retry: asyncio.Task | None = None

    # --- the subsystem surface --------------------------------------------------------------------

    async def start(self, config: Config) -> None:
        from .app import create_management_app

        settings = config.settings.management
        try:
            users = await asyncio.to_thread(UserStore, state.users_db(self.root))
            audit = await asyncio.to_thread(AuditLog, state.audit_db(self.root))
            password = await asyncio.to_thread(state.ensure_first_admin, users, self.root)
        except (StoreError, OSError) as exc:
            raise SubsystemError(f"the management API cannot open its users and audit stores in {self.root}: {exc}") from None
        if password is not None:
            self._announce_first_admin(password)
        self.auth = AuthService(users, audit, session_timeout=settings.session_timeout.milliseconds / 1000,
                                state_dir=self.root, session_lifetime=settings.session_lifetime.milliseconds / 1000)  # fmt: skip
        try:
            certfile = await asyncio.to_thread(self._certificate, config)
        except (OSError, ValueError, ssl.SSLError) as exc:
            raise SubsystemError(f"the management API's certificate cannot be used: {exc}") from None
        log_file = state.controller_log(self.root)
        self.app = create_management_app(self.controller, self.auth, metrics=self.metrics,
                                         controller_log=log_file if log_file.exists() else None)  # fmt: skip
        if self.extend is not None:
            self.extend(self.app)
        await self._listen(settings.address, settings.port, certfile)
        if settings.metrics_address:
            await self._listen_metrics(settings.metrics_address)

    async def applied(self, config: Config) -> None:
        if self.auth is not None:
            self.auth.sessions.timeout = config.settings.management.session_timeout.milliseconds / 1000
            self.auth.sessions.lifetime = config.settings.management.session_lifetime.milliseconds / 1000

    async def stop(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._retry
        for server in reversed(self._servers):
            await server.close()
        self._servers = []
        with contextlib.suppress(OSError):
            state.url_file(self.root).unlink()

    # --- helpers ------------------------------------------------------------------------------------

    def _announce_first_admin(self, password: str) -> None:
        """Print the one-time password once, on the controller's stderr only: never into a log file (the
        API serves the controller log's tail to every role)."""
        path = state.initial_password_file(self.root)
        log.warning("created the first management user 'admin'; its one-time password is printed on stderr and kept in "
                    "%s (mode 0600) until it is changed with 'pacslb user passwd admin'", path)  # fmt: skip
        print(f"pacslb: first management user: admin  one-time password: {password}  (also in {path}; the WebUI and "
              f"the API ask for your own at the first login, or set it with 'pacslb user passwd admin --state-dir "
              f"{self.root}')", file=sys.stderr, flush=True)  # fmt: skip

    def _certificate(self, config: Config) -> Path:
        configured = config.settings.management.certificate
        if configured:
            path = Path(configured)
            if not path.is_absolute():
                path = self.controller.base_dir / path
            # fail now with a clear message rather than inside uvicorn (or reading a device without end)
            found = read_named_file("settings.management.certificate", path, MAX_PEM_BYTES, "PEM file")
            if isinstance(found, Problem):
                raise SubsystemError(str(found))
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(str(path))
            return path
        return ensure_certificate(self.root, config.settings.management.address)

    async def _listen(self, address: str, port: int, certfile: Path) -> None:
        try:
            sock = bind(address, port)
        except OSError as exc:
            why = "the port is in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            log.error("the management API cannot listen on %s port %d (%s): the appliance serves on without it; "
                      "trying again every %gs (set settings.management.port)", address, port, why, RETRY_SECONDS)  # fmt: skip
            self._retry = asyncio.get_running_loop().create_task(self._retry_listen(address, port, certfile))
            return
        server = _uvicorn(self.app, sock, certfile)
        await server.start()
        self._servers.append(server)
        self.url = url_of(sock)
        await asyncio.to_thread(_write_text, state.url_file(self.root), self.url + "\n")
        log.info("management API and WebUI on %s", self.url)

    async def _retry_listen(self, address: str, port: int, certfile: Path) -> None:
        while True:
            await asyncio.sleep(RETRY_SECONDS)
            try:
                sock = bind(address, port)
            except OSError:
                continue
            server = _uvicorn(self.app, sock, certfile)
            await server.start()
            self._servers.append(server)
            self.url = url_of(sock)
            await asyncio.to_thread(_write_text, state.url_file(self.root), self.url + "\n")
            log.info("management API and WebUI on %s (the port is free now)", self.url)
            return

    async def _listen_metrics(self, metrics_address: str) -> None:
        from fastapi import FastAPI

        from .app import metrics_socket
        from .routes_observe import metrics_router

        host, _, port = metrics_address.rpartition(":")
        host = host.strip("[]")
        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
        app.include_router(metrics_router(self.controller, self.metrics, metrics_socket(self.controller), authenticated=False))
        try:
            sock = bind(host, int(port))
        except OSError as exc:
            log.error("cannot serve metrics on %s (%s): they stay on the management API, behind authentication",
                      metrics_address, exc.strerror or exc)  # fmt: skip
            return
        server = _uvicorn(app, sock, None)
        await server.start()
        self._servers.append(server)
        log.info("Prometheus metrics without authentication on %smetrics", url_of(sock, "http"))


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
