"""A small HTTP/1.1 request parser and response builder (pure functions, no I/O).

Enough of RFC 9112 for a test backend behind HAProxy and wrk: request line, headers,
Content-Length and chunked request bodies, keep-alive rules for HTTP/1.0 and 1.1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from http import HTTPStatus

MAX_HEAD = 64 * 1024  # bytes of request line + headers
MAX_HEADERS = 100

_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_VERSION = re.compile(rb"^HTTP/(\d)\.(\d)$")
_FIELD_VALUE_BAD = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


class HttpError(Exception):
    """A request that gets an error response (and the connection closed)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Request:
    method: str
    target: str
    version: tuple[int, int]
    headers: list[tuple[str, str]] = field(default_factory=list)  # names lower-cased, in order

    def header(self, name: str) -> str | None:
        """The value of a header (comma-joined if repeated), or None."""
        name = name.lower()
        values = [v for k, v in self.headers if k == name]
        if not values:
            return None
        return ", ".join(values)

    def header_tokens(self, name: str) -> list[str]:
        v = self.header(name)
        if not v:
            return []
        return [t.strip().lower() for t in v.split(",") if t.strip()]

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.split("?", 1)[0]

    @property
    def keep_alive(self) -> bool:
        """Whether the connection stays open after this request (RFC 9112 section 9.3)."""
        conn = self.header_tokens("connection")
        if "close" in conn:
            return False
        if self.version >= (1, 1):
            return True
        return "keep-alive" in conn

    @property
    def chunked(self) -> bool:
        te = self.header_tokens("transfer-encoding")
        return bool(te) and te[-1] == "chunked"

    @property
    def content_length(self) -> int:
        """Body length for non-chunked requests (0 when absent). Validated by parse_request_head."""
        v = self.header("content-length")
        if v is None:
            return 0
        return int(v.split(",")[0].strip())

    @property
    def expects_continue(self) -> bool:
        v = self.header("expect")
        return v is not None and v.strip().lower() == "100-continue"


def parse_request_head(head: bytes) -> Request:
    """Parse a request line and headers (``head`` may end with the blank line or not).

    Raises HttpError(400/501/505) for what the server must refuse.
    """
    if len(head) > MAX_HEAD:
        raise HttpError(431, "request head too large")
    text = head
    if text.endswith(b"\r\n\r\n"):
        text = text[:-4]
    # Tolerate bare LF line ends (RFC 9112 2.2 allows recipients to).
    lines = text.replace(b"\r\n", b"\n").split(b"\n")
    # A server SHOULD ignore at least one empty line before the request line.
    while lines and lines[0] == b"":
        lines.pop(0)
    if not lines:
        raise HttpError(400, "empty request")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not all(parts):
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    if not _TOKEN.match(method):
        raise HttpError(400, "malformed method")
    m = _VERSION.match(version)
    if not m:
        raise HttpError(400, "malformed HTTP version")
    ver = (int(m.group(1)), int(m.group(2)))
    if ver[0] != 1:
        raise HttpError(505, "HTTP version not supported")
    if any(c < 0x21 or c == 0x7F for c in target):
        raise HttpError(400, "malformed request target")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            raise HttpError(400, "empty line inside the header section")
        if line[0] in (0x20, 0x09):
            raise HttpError(400, "obsolete line folding is not accepted")
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.match(name):
            raise HttpError(400, "malformed header field")
        value = value.strip(b" \t")
        if _FIELD_VALUE_BAD.search(value):
            raise HttpError(400, "invalid character in header value")
        headers.append((name.decode("ascii").lower(), value.decode("latin-1")))
        if len(headers) > MAX_HEADERS:
            raise HttpError(431, "too many header fields")
    req = Request(
        method=method.decode("ascii"),
        target=target.decode("latin-1"),
        version=ver,
        headers=headers,
    )
    _check_framing(req)
    return req


def _check_framing(req: Request) -> None:
    te = req.header_tokens("transfer-encoding")
    cl = [v for k, v in req.headers if k == "content-length"]
    if te:
        if cl:
            raise HttpError(400, "both Transfer-Encoding and Content-Length")
        if req.version < (1, 1):
            raise HttpError(400, "Transfer-Encoding in an HTTP/1.0 request")
        if te[-1] != "chunked":
            raise HttpError(400, "the final transfer coding is not chunked")
        if any(t != "chunked" for t in te):
            raise HttpError(501, "transfer coding not implemented")
        if te.count("chunked") > 1:
            raise HttpError(400, "chunked applied more than once")
    if cl:
        values = {p.strip() for v in cl for p in v.split(",")}
        if len(values) != 1:
            raise HttpError(400, "conflicting Content-Length values")
        (v,) = values
        if not v.isdigit() or len(v) > 18:
            raise HttpError(400, "invalid Content-Length")


def parse_chunk_size(line: bytes) -> int:
    """The size from a chunk-size line (``1a;ext=1\\r\\n`` -> 26)."""
    s = line.rstrip(b"\r\n").split(b";", 1)[0].strip(b" \t")
    if not s or len(s) > 16 or not re.fullmatch(rb"[0-9A-Fa-f]+", s):
        raise HttpError(400, "invalid chunk size")
    return int(s, 16)


def reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def response_head(
    status: int,
    headers: list[tuple[str, str]] | tuple[tuple[str, str], ...],
    *,
    content_length: int,
    keep_alive: bool,
    version: tuple[int, int] = (1, 1),
) -> bytes:
    """The status line and headers of a response with a Content-Length."""
    lines = [f"HTTP/1.1 {status} {reason(status)}"]
    lines.extend(f"{k}: {v}" for k, v in headers)
    lines.append(f"Content-Length: {content_length}")
    if not keep_alive:
        lines.append("Connection: close")
    elif version < (1, 1):
        lines.append("Connection: keep-alive")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def response(
    status: int,
    body: bytes,
    headers: list[tuple[str, str]] | tuple[tuple[str, str], ...] = (),
    *,
    keep_alive: bool = True,
    version: tuple[int, int] = (1, 1),
    head_only: bool = False,
) -> bytes:
    """A whole response; ``head_only`` (for HEAD) keeps Content-Length but drops the body."""
    head = response_head(status, headers, content_length=len(body), keep_alive=keep_alive, version=version)
    return head if head_only else head + body


def error_response(status: int, message: str, extra: tuple[tuple[str, str], ...] = ()) -> bytes:
    body = f"{status} {reason(status)}: {message}\n".encode()
    return response(
        status,
        body,
        (("Content-Type", "text/plain; charset=utf-8"), *extra),
        keep_alive=False,
    )
