"""Serving inside the controller: uvicorn in the running event loop, and the error a part that cannot start raises.

The controller serves three HTTP endpoints this way (its API on a Unix socket, the management API
over HTTPS, the HA peer link with mutual TLS). All of them share what matters: the controller owns
SIGTERM and SIGINT, so uvicorn must neither catch nor re-raise them; `start` returns once the server
listens (or raises what stopped it); `close` is bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

STARTUP_TIMEOUT = 5.0
SHUTDOWN_TIMEOUT = 5.0


class InLoopServer:
    """One uvicorn server on `sock`; `options` go to uvicorn.Config (ssl_certfile, uds, ...)."""

    def __init__(self, app: Any, sock: socket.socket, **options: Any) -> None:
        import uvicorn

        class _Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self):  # uvicorn >= 0.29
                yield

            def install_signal_handlers(self) -> None:  # older uvicorn
                return None

        settings: dict[str, Any] = {"log_level": "warning", "access_log": False, "lifespan": "off",
                                    "timeout_graceful_shutdown": 3} | options  # fmt: skip
        self.server = _Server(uvicorn.Config(app, **settings))
        self.sock = sock
        self.task: asyncio.Task | None = None

    def tls_context(self) -> Any:
        """The ssl.SSLContext uvicorn will serve with (None without TLS), made now so that it can be hardened
        before `start` (uvicorn's options have no minimum TLS version)."""
        config = self.server.config
        if not config.loaded:
            config.load()
        return config.ssl

    async def start(self) -> None:
        """Serve in a task of the running loop; return once it listens, or raise what stopped it."""
        self.task = asyncio.get_running_loop().create_task(self.server.serve(sockets=[self.sock]))
        deadline = asyncio.get_running_loop().time() + STARTUP_TIMEOUT
        while not (self.server.started or self.task.done()) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        if self.task.done():
            self.task.result()

    async def close(self) -> None:
        """Ask uvicorn to finish its requests and stop; cancel it when it takes longer than SHUTDOWN_TIMEOUT."""
        self.server.should_exit = True
        if self.task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(self.task), timeout=SHUTDOWN_TIMEOUT)
            if not self.task.done():
                self.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self.task
        self.sock.close()


class SubsystemError(Exception):
    """A part of the appliance (health checks, HA pair, management API) cannot start; the message says what to fix."""
