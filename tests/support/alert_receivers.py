"""Real alert receivers on loopback for tests: an SMTP server, an HTTP webhook receiver, syslog sockets.

  SmtpReceiver(user, password, tls="starttls"|"tls")   aiosmtpd on 127.0.0.1:<free port> with a self-signed
                                               certificate, STARTTLS required (or TLS from the first byte) and
                                               AUTH required; .messages (email.message.Message), .logins
  WebhookReceiver(status=200, delay=0)         an HTTP server that keeps each POST (.posts: body, headers, at)
  SyslogUDP(), SyslogTCP(), SyslogUnix(path)   sockets that keep each message (.lines: bytes, at)
  parse_rfc5424(line) -> dict                  an RFC 5424 message's fields, its structured data's params

Each is a context manager: it serves in threads of the test process, and stops (its port closed) on exit.
"""

from __future__ import annotations

import email
import email.policy
import http.server
import re
import socket
import ssl
import tempfile
import threading
import time
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from pacslb import pki
from support.net import LOOPBACK, free_port


def _server_context() -> ssl.SSLContext:
    issued = pki.self_signed("smtp.test", [LOOPBACK])
    folder = Path(tempfile.mkdtemp(prefix="pacslb-smtp-"))
    cert, key = folder / "cert.pem", folder / "key.pem"
    cert.write_bytes(issued.cert_pem)
    key.write_bytes(issued.key_pem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    cert.unlink()
    key.unlink()
    folder.rmdir()
    return context


class _Handler:
    def __init__(self, receiver: "SmtpReceiver") -> None:
        self.receiver = receiver

    async def handle_DATA(self, server, session, envelope) -> str:
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        self.receiver.messages.append((message, envelope.rcpt_tos, time.monotonic()))
        return "250 OK"


class SmtpReceiver:
    def __init__(self, user: str, password: str, tls: str = "starttls") -> None:
        self.user, self.password, self.tls = user, password, tls
        self.messages: list[tuple[email.message.Message, list[str], float]] = []
        self.logins: list[tuple[str, bool]] = []
        self.port = free_port()
        context = _server_context()
        common = dict(hostname=LOOPBACK, port=self.port, auth_required=True, authenticator=self._authenticate)
        if tls == "starttls":
            self.controller = Controller(_Handler(self), tls_context=context, require_starttls=True, **common)
        else:
            # TLS from the first byte: aiosmtpd cannot see that the socket is wrapped, so it is told AUTH is safe here
            # (aiosmtpd warns of AUTH without TLS once per connection: the test module filters that warning)
            self.controller = Controller(_Handler(self), ssl_context=context, auth_require_tls=False, **common)

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = auth_data.login.decode() == self.user and auth_data.password.decode() == self.password
        self.logins.append((auth_data.login.decode(), ok))
        return AuthResult(success=ok, handled=False)  # not handled: aiosmtpd answers 535 itself

    def __enter__(self) -> "SmtpReceiver":
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


class _WebhookHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        receiver: WebhookReceiver = self.server.receiver  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if receiver.delay:
            time.sleep(receiver.delay)
        receiver.posts.append((body, dict(self.headers), time.monotonic()))
        answer = b"{}"
        self.send_response(receiver.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True


class WebhookReceiver:
    def __init__(self, status: int = 200, delay: float = 0.0) -> None:
        self.status, self.delay = status, delay
        self.posts: list[tuple[bytes, dict[str, str], float]] = []
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}/alerts"
        self._server = _HTTPServer((LOOPBACK, self.port), _WebhookHandler)
        self._server.receiver = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> "WebhookReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _SocketReceiver:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lines: list[tuple[bytes, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        sock.settimeout(0.1)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            self.lines.append((data, time.monotonic()))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


class SyslogUDP(_SocketReceiver):
    def __init__(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((LOOPBACK, 0))
        self.target = f"{LOOPBACK}:{sock.getsockname()[1]}"
        super().__init__(sock)


class SyslogUnix(_SocketReceiver):
    def __init__(self, path: Path) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(path))
        self.target = str(path)
        super().__init__(sock)


class SyslogTCP:
    """A TCP syslog server: splits the stream by octet counting (RFC 6587 3.4.1) into .lines."""

    def __init__(self) -> None:
        self.server = socket.create_server((LOOPBACK, 0))
        self.server.settimeout(0.1)
        self.target = f"{LOOPBACK}:{self.server.getsockname()[1]}"
        self.lines: list[tuple[bytes, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                try:
                    while chunk := conn.recv(65536):
                        data += chunk
                except OSError:
                    pass
            while data:
                count, _, rest = data.partition(b" ")
                size = int(count)
                self.lines.append((rest[:size], time.monotonic()))
                data = rest[size:]

    def __enter__(self) -> "SyslogTCP":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.server.close()


# RFC 5424 section 6: HEADER SP STRUCTURED-DATA [SP MSG], MSG with a BOM when it is UTF-8
RFC5424 = re.compile(
    rb"^<(?P<pri>\d{1,3})>1 (?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?Z) (?P<host>[!-~]{1,255}) "
    rb"(?P<app>[!-~]{1,48}) (?P<procid>[!-~]{1,128}) (?P<msgid>[!-~]{1,32}) (?P<sd>\[(?:[^\]\\]|\\.)*\]) \xef\xbb\xbf(?P<msg>.*)$",
    re.S,
)


def parse_rfc5424(line: bytes) -> dict:
    """The fields of an RFC 5424 message (AssertionError when it is not one); `params` of its structured data."""
    match = RFC5424.match(line)
    assert match, f"not an RFC 5424 message: {line[:200]!r}"
    fields = match.groupdict()
    sd = fields["sd"].decode()
    params = dict(re.findall(r' ([^= \]"]+)="((?:[^"\\]|\\.)*)"', sd))
    fields["params"] = {k: re.sub(r"\\(.)", r"\1", v) for k, v in params.items()}
    fields["sd_id"] = sd[1:].split(" ")[0].rstrip("]")
    return fields
