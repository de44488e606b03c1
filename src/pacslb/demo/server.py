"""The runtime: replicas that listen (HTTP/HTTPS or AMQP) and a control endpoint, on one loop.

:class:`DemoServices` runs every replica of a :class:`~pacslb.demo.spec.DemoSpec` in the
current asyncio loop. A replica is *up* (its listening socket is open) or *stopped* (the
socket is closed, so connections are refused, and its open connections are closed).
Independently, a replica can be made *unhealthy*: it keeps serving but ``GET /health``
answers 503, for health checks that read the status.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from dataclasses import dataclass
from typing import Any, Awaitable, Callable
from urllib.parse import unquote

from .. import __version__
from . import amqp, http11
from .spec import DemoSpec, ReplicaSpec, ServiceSpec

log = logging.getLogger("pacslb.demo")

STREAM_LIMIT = http11.MAX_HEAD + 4
BLOCK = b"0123456789abcdef" * 16384  # 256 KiB, shared by every /bytes/N response
MAX_BYTES = 1 << 34  # /bytes/N refuses more than 16 GiB
AMQP_HEADER_TIMEOUT = 10.0  # seconds to wait for the AMQP protocol header
AMQP_CLOSE_OK_TIMEOUT = 3.0

COMMON_HEADERS = (("Server", f"pacslb-demo/{__version__}"),)


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    stream_length: int | None = None  # if set: a body of this many bytes from BLOCK
    close: bool = False  # close the connection after this response


Handler = Callable[[http11.Request, int, tuple], Awaitable[Response]]


def json_response(status: int, obj: Any, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    body = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
    return Response(status, body, (("Content-Type", "application/json"), *headers))


def text_response(status: int, text: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(status, text.encode(), (("Content-Type", "text/plain; charset=utf-8"), *headers))


async def _write_error(writer: asyncio.StreamWriter, status: int, message: str) -> None:
    try:
        writer.write(http11.error_response(status, message, COMMON_HEADERS))
        await writer.drain()
    except (ConnectionError, RuntimeError, ssl.SSLError):
        pass


async def _read_body(reader: asyncio.StreamReader, req: http11.Request) -> int:
    """Read and discard the request body; return its length."""
    total = 0
    if req.chunked:
        while True:
            line = await reader.readuntil(b"\r\n")
            size = http11.parse_chunk_size(line)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailer fields
                    pass
                return total
            remaining = size
            while remaining:
                got = await reader.read(min(remaining, 1 << 16))
                if not got:
                    raise asyncio.IncompleteReadError(b"", remaining)
                remaining -= len(got)
            total += size
            if await reader.readexactly(2) != b"\r\n":
                raise http11.HttpError(400, "chunk data not followed by CRLF")
    remaining = req.content_length
    while remaining:
        got = await reader.read(min(remaining, 1 << 16))
        if not got:
            raise asyncio.IncompleteReadError(b"", remaining)
        remaining -= len(got)
        total += len(got)
    return total


async def serve_http(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    handler: Handler,
    keepalive_timeout: float,
    peer: tuple,
) -> int:
    """Serve HTTP/1.x requests on one connection until it closes; return the request count."""
    count = 0
    while True:
        try:
            async with asyncio.timeout(keepalive_timeout):
                head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as e:
            if e.partial.strip():
                await _write_error(writer, 400, "incomplete request head")
            return count
        except asyncio.LimitOverrunError:
            await _write_error(writer, 431, "request head too large")
            return count
        except TimeoutError:
            return count
        try:
            req = http11.parse_request_head(head)
            if req.expects_continue and (req.chunked or req.content_length):
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            body_len = await _read_body(reader, req)
        except http11.HttpError as e:
            await _write_error(writer, e.status, e.message)
            return count
        except asyncio.LimitOverrunError:
            await _write_error(writer, 400, "chunk size line too long")
            return count
        count += 1
        resp = await handler(req, body_len, peer)
        keep = req.keep_alive and not resp.close
        head_only = req.method == "HEAD"
        headers = COMMON_HEADERS + resp.headers
        if resp.stream_length is None:
            writer.write(
                http11.response(
                    resp.status,
                    resp.body,
                    headers,
                    keep_alive=keep,
                    version=req.version,
                    head_only=head_only,
                )
            )
        else:
            writer.write(
                http11.response_head(
                    resp.status,
                    headers,
                    content_length=resp.stream_length,
                    keep_alive=keep,
                    version=req.version,
                )
            )
            if not head_only:
                remaining = resp.stream_length
                block = memoryview(BLOCK)
                while remaining:
                    n = min(remaining, len(block))
                    writer.write(block[:n])
                    remaining -= n
                    await writer.drain()
        await writer.drain()
        if not keep:
            return count


def _make_ssl_context(cert: str, key: str | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class Replica:
    """One replica of one service: a listening socket that can be stopped and started."""

    def __init__(self, owner: "DemoServices", service: ServiceSpec, spec: ReplicaSpec):
        self.owner = owner
        self.service = service
        self.spec = spec
        tls = service.tls_for(spec)
        self.tls = tls is not None
        self.ssl: ssl.SSLContext | None = None
        if tls is not None:
            self.ssl = owner.ssl_context(tls.cert, tls.key)
        self.port = service.port  # becomes the bound port once started (port 0 in the spec)
        self.server: asyncio.base_events.Server | None = None
        self.healthy = True
        self.connections: dict[asyncio.Task, asyncio.StreamWriter] = {}
        self.accepted = 0
        self.requests = 0
        self._lock = asyncio.Lock()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def address(self) -> str:
        return self.spec.address

    @property
    def up(self) -> bool:
        return self.server is not None

    def state(self) -> dict[str, Any]:
        return {
            "service": self.service.name,
            "replica": self.name,
            "kind": self.service.kind,
            "address": self.address,
            "port": self.port,
            "tls": self.tls,
            "state": "up" if self.up else "stopped",
            "healthy": self.healthy,
            "connections": len(self.connections),
            "accepted": self.accepted,
            "requests": self.requests,
        }

    async def start(self) -> None:
        async with self._lock:
            if self.server is not None:
                return
            self.server = await asyncio.start_server(
                self._on_client,
                host=self.address,
                port=self.port,
                ssl=self.ssl,
                ssl_handshake_timeout=10.0 if self.ssl else None,
                limit=STREAM_LIMIT,
                reuse_address=True,
                backlog=1024,
            )
            if self.port == 0:
                self.port = self.server.sockets[0].getsockname()[1]
            log.info("started %s/%s on %s:%d", self.service.name, self.name, self.address, self.port)

    async def stop(self) -> None:
        async with self._lock:
            server, self.server = self.server, None
            if server is None:
                return
            server.close()  # the listening socket: new connections are refused
            tasks = list(self.connections)
            for task, writer in list(self.connections.items()):
                writer.transport.abort()
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=5.0)
            try:
                await asyncio.wait_for(server.wait_closed(), 5.0)
            except TimeoutError:
                log.warning("%s/%s: server did not close in time", self.service.name, self.name)
            log.info("stopped %s/%s", self.service.name, self.name)

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self.server is None:  # accepted just as the replica stopped
            writer.transport.abort()
            return
        self.connections[task] = writer
        self.accepted += 1
        peer = writer.get_extra_info("peername") or ("", 0)
        try:
            if self.service.kind == "amqp":
                await self._serve_amqp(reader, writer)
            else:
                await serve_http(reader, writer, self._handle, self.owner.spec.keepalive_timeout, peer)
        except asyncio.CancelledError:
            pass
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, TimeoutError):
            pass
        except Exception:  # a bug: log it, keep serving other connections
            log.exception("%s/%s: connection handler failed", self.service.name, self.name)
        finally:
            self.connections.pop(task, None)
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - closing a connection that already broke
                pass

    # ------------------------------------------------------------------ HTTP

    def _identity_headers(self) -> tuple[tuple[str, str], ...]:
        return (("X-Pacslb-Service", self.service.name), ("X-Pacslb-Replica", self.name))

    async def _handle(self, req: http11.Request, body_len: int, peer: tuple) -> Response:
        self.requests += 1
        ident = self._identity_headers()
        path = req.path
        if path == "/health":
            if self.healthy:
                return text_response(200, "OK", ident)
            return text_response(503, "unhealthy", ident)
        if path.startswith("/bytes/"):
            n = path[len("/bytes/") :]
            if not n.isdigit() or int(n) > MAX_BYTES:
                return text_response(400, f"/bytes/N: N is a byte count up to {MAX_BYTES}", ident)
            return Response(
                200,
                headers=(("Content-Type", "application/octet-stream"), *ident),
                stream_length=int(n),
            )
        _, _, query = req.target.partition("?")
        return json_response(
            200,
            {
                "service": self.service.name,
                "replica": self.name,
                "address": self.address,
                "port": self.port,
                "tls": self.tls,
                "method": req.method,
                "path": path,
                "query": query or None,
                "http_version": f"{req.version[0]}.{req.version[1]}",
                "host": req.header("host"),
                "x_forwarded_for": req.header("x-forwarded-for"),
                "client": peer[0],
                "client_port": peer[1],
                "body_bytes": body_len,
            },
            ident,
        )

    # ------------------------------------------------------------------ AMQP

    async def _serve_amqp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        props = amqp.server_properties(self.service.name, self.name, f"{self.address}:{self.port}", __version__)
        hs = amqp.ServerHandshake(props)
        while not hs.closed:
            timeout = None
            if not hs.header_done:
                timeout = AMQP_HEADER_TIMEOUT
            elif hs.closing:
                timeout = AMQP_CLOSE_OK_TIMEOUT
            try:
                async with asyncio.timeout(timeout):
                    data = await reader.read(65536)
            except TimeoutError:
                return
            if not data:
                return
            had_header = hs.header_done
            out = hs.receive(data)
            if hs.header_done and not had_header:
                self.requests += 1  # one AMQP "request": a protocol header answered with Start
            if out:
                writer.write(out)
                await writer.drain()
        # Closed by protocol: let the last bytes go out, then close.
        await writer.drain()


class DemoServices:
    """All replicas of a spec plus the control endpoint, in the running asyncio loop."""

    def __init__(self, spec: DemoSpec):
        self.spec = spec.validate()
        self._ssl_cache: dict[tuple[str, str | None], ssl.SSLContext] = {}
        self.replicas: dict[tuple[str, str], Replica] = {}
        for s in spec.services:
            for r in s.replicas:
                self.replicas[(s.name, r.name)] = Replica(self, s, r)
        self.control_server: asyncio.base_events.Server | None = None
        self.control_port: int | None = None
        self.shutdown_requested = asyncio.Event()
        self._control_conns: dict[asyncio.Task, asyncio.StreamWriter] = {}

    def ssl_context(self, cert: str, key: str | None) -> ssl.SSLContext:
        k = (cert, key)
        if k not in self._ssl_cache:
            self._ssl_cache[k] = _make_ssl_context(cert, key)
        return self._ssl_cache[k]

    def replica(self, service: str, replica: str) -> Replica:
        return self.replicas[(service, replica)]

    def states(self) -> list[dict[str, Any]]:
        return [r.state() for r in self.replicas.values()]

    async def start(self, control: bool = True) -> None:
        """Start every replica, then the control endpoint. Raises OSError if a bind fails."""
        for r in self.replicas.values():
            await r.start()
        if control:
            self.control_server = await asyncio.start_server(
                self._on_control,
                host=self.spec.control_host,
                port=self.spec.control_port,
                limit=STREAM_LIMIT,
                reuse_address=True,
            )
            self.control_port = self.control_server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.control_server is not None:
            self.control_server.close()
        await asyncio.gather(*(r.stop() for r in self.replicas.values()))
        if self.control_server is not None:
            for task, writer in list(self._control_conns.items()):
                writer.transport.abort()
                task.cancel()
            if self._control_conns:
                await asyncio.wait(list(self._control_conns), timeout=5.0)
            self.control_server = None

    def ready_info(self) -> dict[str, Any]:
        """What the ready line says: the control endpoint and every replica's address."""
        host = self.spec.control_host
        return {
            "event": "ready",
            "control": {
                "host": host,
                "port": self.control_port,
                "url": f"http://{_hostport(host, self.control_port)}",
            },
            "services": [
                {
                    "name": s.name,
                    "kind": s.kind,
                    "tls": s.tls is not None,
                    "replicas": [
                        {
                            "name": r.name,
                            "address": r.address,
                            "port": self.replica(s.name, r.name).port,
                        }
                        for r in s.replicas
                    ],
                }
                for s in self.spec.services
            ],
        }

    # ------------------------------------------------------------------ control endpoint

    async def _on_control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._control_conns[task] = writer
        peer = writer.get_extra_info("peername") or ("", 0)
        try:
            await serve_http(reader, writer, self._control, 30.0, peer)
        except (asyncio.CancelledError, ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:
            log.exception("control connection failed")
        finally:
            self._control_conns.pop(task, None)
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - closing a connection that already broke
                pass

    async def _control(self, req: http11.Request, body_len: int, peer: tuple) -> Response:
        parts = [unquote(p) for p in req.path.split("/") if p]
        m = req.method
        if parts == ["health"]:
            return text_response(200, "OK")
        if parts == ["replicas"] and m in ("GET", "HEAD"):
            return json_response(200, self.states())
        if parts == ["shutdown"] and m == "POST":
            asyncio.get_running_loop().call_soon(self.shutdown_requested.set)
            return json_response(200, {"shutdown": True}, ())
        if len(parts) >= 2 and parts[0] == "replicas":
            service = parts[1]
            targets = [r for (s, _), r in self.replicas.items() if s == service]
            if not targets:
                return json_response(404, {"error": f"no service {service!r}"})
            action = None
            if len(parts) == 2:
                if m in ("GET", "HEAD"):
                    return json_response(200, [r.state() for r in targets])
                return json_response(405, {"error": "GET the service, or POST an action"})
            if len(parts) == 3 and m in ("GET", "HEAD"):
                try:
                    return json_response(200, self.replica(service, parts[2]).state())
                except KeyError:
                    return json_response(404, {"error": f"no replica {service}/{parts[2]}"})
            if len(parts) == 3 and m == "POST":
                action = parts[2]  # an action on every replica of the service
            elif len(parts) == 4 and m == "POST":
                try:
                    targets = [self.replica(service, parts[2])]
                except KeyError:
                    return json_response(404, {"error": f"no replica {service}/{parts[2]}"})
                action = parts[3]
            else:
                return json_response(405, {"error": "use GET for state, POST for actions"})
            if action not in ("start", "stop", "healthy", "unhealthy"):
                return json_response(404, {"error": f"unknown action {action!r}: start, stop, healthy, unhealthy"})
            try:
                for r in targets:
                    if action == "start":
                        await r.start()
                    elif action == "stop":
                        await r.stop()
                    else:
                        r.healthy = action == "healthy"
            except OSError as e:
                return json_response(500, {"error": f"{action} failed: {e}"})
            states = [r.state() for r in targets]
            return json_response(200, states[0] if len(parts) == 4 else states)
        return json_response(404, {"error": "not found", "path": req.path})


def _hostport(host: str, port: int | None) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
