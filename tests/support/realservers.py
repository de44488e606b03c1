"""Real servers on loopback for tests: threaded HTTP servers that answer every GET with their name.

TinyHTTPServer(name, host, port=0)   .start(), .stop() (its port then refuses connections), .requests,
                                     .seen (the (path, host) of each request, in order)
EchoHTTPServer(name, host, port=0)   the same, answering `NAME PATH HOST` (the request target as sent, the Host
                                     header): tests of what HAProxy changes in a request (URL rewriting,
                                     docs/rewriting.md) read it back here
"""

from __future__ import annotations

import http.server
import threading

from support.net import free_port


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        host = self.headers.get("Host", "")
        self.server.requests += 1  # type: ignore[attr-defined]
        self.server.seen.append((self.path, host))  # type: ignore[attr-defined]
        body = self.server.answer(self.path, host).encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, *args: object) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address) -> None:
        pass  # health checks close early; that is not an error here


class TinyHTTPServer:
    """A real server for tests: answers every GET with its name. stop() makes its port refuse connections."""

    def __init__(self, name: str, host: str, port: int = 0) -> None:
        self.name = name
        self.host = host
        self.port = port or free_port(host)
        self.seen: list[tuple[str, str]] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def answer(self, path: str, host: str) -> str:
        """The body of the answer to a GET of `path` with this Host header."""
        return f"{self.name}\n"

    @property
    def requests(self) -> int:
        return self._server.requests if self._server else 0  # type: ignore[attr-defined]

    def start(self) -> "TinyHTTPServer":
        server = _Server((self.host, self.port), _Handler)
        server.requests = 0  # type: ignore[attr-defined]
        server.seen = self.seen  # type: ignore[attr-defined]
        server.answer = self.answer  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


class EchoHTTPServer(TinyHTTPServer):
    """A real server that answers every GET with its name, the path and the Host header it received."""

    def answer(self, path: str, host: str) -> str:
        return f"{self.name} {path} {host}\n"
