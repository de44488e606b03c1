"""HTTP/1.1 request parsing and the connection loop, in memory (no sockets)."""

import asyncio
import json

import pytest

from pacslb.demo import http11
from pacslb.demo.server import DemoServices, serve_http
from pacslb.demo.spec import demo_spec_for


def test_parse_simple_get():
    r = http11.parse_request_head(b"GET /inference/x?a=1 HTTP/1.1\r\nHost: pacs\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n")
    assert r.method == "GET"
    assert r.target == "/inference/x?a=1"
    assert r.path == "/inference/x"
    assert r.version == (1, 1)
    assert r.headers == [("host", "pacs"), ("x-forwarded-for", "10.0.0.1")]
    assert r.header("HOST") == "pacs"
    assert r.header("missing") is None
    assert r.keep_alive and not r.chunked and r.content_length == 0


def test_repeated_headers_are_joined_and_values_trimmed():
    r = http11.parse_request_head(b"GET / HTTP/1.1\r\nX-Forwarded-For:  1.1.1.1 \r\nX-Forwarded-For: 2.2.2.2\r\n\r\n")
    assert r.header("x-forwarded-for") == "1.1.1.1, 2.2.2.2"


@pytest.mark.parametrize(
    "version, connection, keep",
    [
        (b"HTTP/1.1", None, True),
        (b"HTTP/1.1", b"close", False),
        (b"HTTP/1.1", b"Keep-Alive, Close", False),
        (b"HTTP/1.1", b"keep-alive", True),
        (b"HTTP/1.0", None, False),
        (b"HTTP/1.0", b"Keep-Alive", True),
        (b"HTTP/1.0", b"close", False),
    ],
)
def test_keep_alive_rules(version, connection, keep):
    head = b"GET / " + version + b"\r\n"
    if connection is not None:
        head += b"Connection: " + connection + b"\r\n"
    assert http11.parse_request_head(head + b"\r\n").keep_alive is keep


def test_body_framing():
    r = http11.parse_request_head(b"POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n")
    assert r.content_length == 12 and not r.chunked
    r = http11.parse_request_head(b"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n")
    assert r.content_length == 5
    r = http11.parse_request_head(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert r.chunked
    r = http11.parse_request_head(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")
    assert r.expects_continue


def test_leading_empty_lines_are_ignored():
    r = http11.parse_request_head(b"\r\nGET / HTTP/1.1\r\n\r\n")
    assert r.method == "GET"


@pytest.mark.parametrize(
    "head, status",
    [
        (b"GET /\r\n\r\n", 400),
        (b"GET  / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1 extra\r\n\r\n", 400),
        (b"G(T / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"GET / HTTX/1.1\r\n\r\n", 400),
        (b"GET /\x7f HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"\r\n\r\n", 400),
    ],
)
def test_bad_requests(head, status):
    with pytest.raises(http11.HttpError) as e:
        http11.parse_request_head(head)
    assert e.value.status == status


def test_too_many_headers():
    head = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(200)) + b"\r\n"
    with pytest.raises(http11.HttpError) as e:
        http11.parse_request_head(head)
    assert e.value.status == 431


@pytest.mark.parametrize("line, size", [(b"0\r\n", 0), (b"1a\r\n", 26), (b"FF;name=value\r\n", 255), (b"10 \r\n", 16)])
def test_chunk_size(line, size):
    assert http11.parse_chunk_size(line) == size


@pytest.mark.parametrize("line", [b"\r\n", b"xyz\r\n", b"-1\r\n", b"11111111111111111\r\n"])
def test_bad_chunk_size(line):
    with pytest.raises(http11.HttpError):
        http11.parse_chunk_size(line)


def test_response_bytes():
    assert http11.response(200, b"OK", [("X-A", "1")]) == (b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nOK")
    assert http11.response(503, b"no", keep_alive=False) == (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno"
    )
    assert http11.response(200, b"x", version=(1, 0)) == (
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\nx"
    )
    assert http11.response(200, b"abc", head_only=True) == b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"


# ---------------------------------------------------------------- the connection loop, in memory


class MemoryWriter:
    def __init__(self):
        self.data = bytearray()

    def write(self, b):
        self.data += bytes(b)

    async def drain(self):
        pass


def split_responses(data: bytes, head_only=()) -> list[tuple[int, dict[str, str], bytes]]:
    """Cut a byte stream into responses; ``head_only``: indexes of answers to HEAD (no body)."""
    out = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (lis.partition(":") for lis in lines[1:])}
        n = int(headers.get("content-length", "0"))
        if status == 100 or len(out) in head_only:
            n = 0
        out.append((status, headers, rest[:n]))
        data = rest[n:]
    return out


async def run_connection(raw: bytes, keepalive_timeout: float = 5.0, head_only=()):
    spec = demo_spec_for([("WFC_inference_443", 443, "http")], replicas=2)
    app = DemoServices(spec)
    replica = app.replica("WFC_inference_443", "r2")
    reader = asyncio.StreamReader(limit=http11.MAX_HEAD + 4)
    reader.feed_data(raw)
    reader.feed_eof()
    writer = MemoryWriter()
    count = await serve_http(reader, writer, replica._handle, keepalive_timeout, ("10.9.8.7", 4242))
    return count, split_responses(bytes(writer.data), head_only), replica


async def test_pipelined_requests_name_service_and_replica():
    raw = (
        b"GET /a HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 192.0.2.1\r\n\r\n"
        b"POST /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
        b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n"
        b"GET /health HTTP/1.1\r\n\r\n"
        b"HEAD /bytes/5 HTTP/1.1\r\n\r\n"
        b"GET /bytes/300000 HTTP/1.1\r\nConnection: close\r\n\r\n"
        b"GET /never HTTP/1.1\r\n\r\n"
    )
    count, resps, replica = await run_connection(raw, head_only={4})
    assert count == 6
    assert [r[0] for r in resps] == [200] * 6
    for _, headers, _ in resps:
        assert headers["x-pacslb-service"] == "WFC_inference_443"
        assert headers["x-pacslb-replica"] == "r2"
    a = json.loads(resps[0][2])
    assert a == {
        "service": "WFC_inference_443",
        "replica": "r2",
        "address": "127.0.10.2",
        "port": 443,
        "tls": False,
        "method": "GET",
        "path": "/a",
        "query": None,
        "http_version": "1.1",
        "host": "h",
        "x_forwarded_for": "192.0.2.1",
        "client": "10.9.8.7",
        "client_port": 4242,
        "body_bytes": 0,
    }
    assert json.loads(resps[1][2])["body_bytes"] == 5
    c = json.loads(resps[2][2])
    assert (c["method"], c["path"], c["body_bytes"], c["x_forwarded_for"]) == ("POST", "/c", 5, None)
    assert resps[3][2] == b"OK"
    assert resps[4][1]["content-length"] == "5" and resps[4][2] == b""
    assert len(resps[5][2]) == 300000 and resps[5][1]["connection"] == "close"
    assert resps[5][2][:16] == b"0123456789abcdef"
    assert replica.requests == 6


async def test_unhealthy_replica_answers_503_on_health_only():
    spec = demo_spec_for([("svc", 8443, "http")])
    app = DemoServices(spec)
    rep = app.replica("svc", "r1")
    rep.healthy = False
    reader = asyncio.StreamReader()
    reader.feed_data(b"GET /health HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n")
    reader.feed_eof()
    w = MemoryWriter()
    await serve_http(reader, w, rep._handle, 5.0, ("127.0.0.1", 1))
    resps = split_responses(bytes(w.data))
    assert [r[0] for r in resps] == [503, 200]


async def test_expect_100_continue():
    count, resps, _ = await run_connection(b"PUT /u HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc")
    assert [r[0] for r in resps] == [100, 200]
    assert json.loads(resps[1][2])["body_bytes"] == 3


@pytest.mark.parametrize(
    "raw, status",
    [
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"BROKEN\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x", 400),  # EOF inside the head
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    ],
)
async def test_errors_close_the_connection(raw, status):
    if raw.endswith(b"\r\n"):
        raw += b"GET / HTTP/1.1\r\n\r\n"  # never answered: the connection closed first
    count, resps, _ = await run_connection(raw)
    assert resps[0][0] == status
    assert resps[0][1]["connection"] == "close"
    assert len(resps) == 1


async def test_head_too_large_is_431():
    raw = b"GET / HTTP/1.1\r\nX: " + b"a" * (http11.MAX_HEAD + 10) + b"\r\n\r\n"
    _, resps, _ = await run_connection(raw)
    assert [r[0] for r in resps] == [431]


async def test_http10_closes_without_keep_alive():
    count, resps, _ = await run_connection(b"GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n")
    assert count == 1 and resps[0][1]["connection"] == "close"


async def test_idle_connection_times_out():
    spec = demo_spec_for([("svc", 8443, "http")])
    rep = DemoServices(spec).replica("svc", "r1")
    reader = asyncio.StreamReader()
    reader.feed_data(b"GET / HTTP/1.1\r\n\r\n")  # then nothing, no EOF
    w = MemoryWriter()
    count = await asyncio.wait_for(serve_http(reader, w, rep._handle, 0.2, ("127.0.0.1", 1)), 5)
    assert count == 1
