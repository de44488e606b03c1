"""A real server that tells each client the address it sees as the peer: TCP ("NAME PEER\\n" on connect) or
HTTP (every GET answered with "NAME PEER\\n"). For the client-address tests (docs/client-address.md).

As a module:  PeerServer(name, host, port, http=False).start() ... .stop()
As a script (inside a namespace):  python peer_server.py NAME ADDRESS PORT tcp|http   (prints "ready")
"""

from __future__ import annotations

import http.server
import socket
import socketserver
import sys
import threading


class _TCPHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        try:
            self.request.sendall(f"{self.server.name} {self.client_address[0]}\n".encode())  # type: ignore[attr-defined]
        except OSError:
            pass  # a health check that closed at once


class _HTTPHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = f"{self.server.name} {self.client_address[0]}\n".encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address) -> None:
        pass


class _Server6(_Server):
    address_family = socket.AF_INET6


class PeerServer:
    """A threaded server on (host, port) answering with its name and the peer's address; stop() closes it."""

    def __init__(self, name: str, host: str, port: int, http: bool = False) -> None:
        server_class = _Server6 if ":" in host else _Server
        self._server = server_class((host, port), _HTTPHandler if http else _TCPHandler)
        self._server.name = name  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> "PeerServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


if __name__ == "__main__":
    name, address, port, kind = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    server = PeerServer(name, address, port, http=kind == "http")
    print("ready", flush=True)
    server._server.serve_forever()
