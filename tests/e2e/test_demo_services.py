"""The simulated services as a real process on loopback: HTTPS, keep-alive, big bodies, AMQP,
stopping and starting replicas, and a clean exit on SIGTERM."""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pacslb.demo import DemoProcess, DemoSpec, TlsSpec, amqp, demo_spec_for

pytestmark = pytest.mark.e2e

SECOND_OCTET = 213  # 127.213.x.y: away from addresses other tests are likely to use
BIG = 10 * 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_pki(tmp_path, addresses: list[str]):
    """A CA and a server certificate with an IP SAN for every address; returns paths."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pacslb demo test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pacslb demo")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    pem_cert = cert.public_bytes(serialization.Encoding.PEM)
    pem_key = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    paths = {
        "ca": tmp_path / "ca.pem",
        "cert": tmp_path / "server.crt",
        "key": tmp_path / "server.key",
        "combined": tmp_path / "server.pem",
    }
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(pem_cert)
    paths["key"].write_bytes(pem_key)
    paths["combined"].write_bytes(pem_cert + pem_key)
    for p in (paths["key"], paths["combined"]):
        p.chmod(0o600)
    return paths


def build_spec(tmp_path) -> tuple[DemoSpec, dict]:
    names = [
        ("WFC_inference_443", free_port(), "http"),
        ("WFC_inference_80", free_port(), "http"),
        ("WFC_RMQAMQP", free_port(), "amqp"),
        ("SR_https_vs", free_port(), "http"),
    ]
    addresses = demo_spec_for(names, second_octet=SECOND_OCTET).addresses()
    pki = make_pki(tmp_path, addresses)
    tls_split = TlsSpec(str(pki["cert"]), str(pki["key"]))
    tls_combined = str(pki["combined"])
    spec = demo_spec_for(
        [
            (names[0][0], names[0][1], "http", tls_split),
            (names[1][0], names[1][1], "http", None),
            (names[2][0], names[2][1], "amqp", None),
            (names[3][0], names[3][1], "http", tls_combined),
        ],
        replicas=2,
        second_octet=SECOND_OCTET,
        control_port=free_port(),
    )
    return spec, pki


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    spec, pki = build_spec(tmp)
    stderr = open(tmp / "stderr.log", "wb")
    proc = DemoProcess(spec, max_lifetime=300, stderr=stderr, ready_timeout=20)
    proc.start()
    try:
        yield proc, spec, pki
    finally:
        rc = proc.stop()
        stderr.close()
        log = (tmp / "stderr.log").read_text()
        assert rc == 0, log
        assert "Traceback" not in log, log


def client_ctx(pki) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    ctx.check_hostname = True  # IP SANs are checked against the address
    return ctx


def connect(spec: DemoSpec, pki, service: str, replica: str, timeout=10.0):
    s = spec.service(service)
    addr = next(r.address for r in s.replicas if r.name == replica)
    if s.tls is not None:
        return http.client.HTTPSConnection(addr, s.port, timeout=timeout, context=client_ctx(pki))
    return http.client.HTTPConnection(addr, s.port, timeout=timeout)


def get_json(conn, path, headers=None):
    conn.request("GET", path, headers=headers or {})
    r = conn.getresponse()
    body = r.read()
    return r, json.loads(body)


def test_ready_line_lists_every_replica(demo):
    proc, spec, _ = demo
    ready = proc.ready
    assert ready["event"] == "ready" and ready["pid"] == proc.pid
    assert ready["control"]["port"] == spec.control_port
    got = {(s["name"], r["name"]): (r["address"], r["port"]) for s in ready["services"] for r in s["replicas"]}
    want = {(s.name, r.name): (r.address, s.port) for s in spec.services for r in s.replicas}
    assert got == want


@pytest.mark.parametrize("service", ["WFC_inference_443", "WFC_inference_80", "SR_https_vs"])
@pytest.mark.parametrize("replica", ["r1", "r2"])
def test_responses_name_service_and_replica(demo, service, replica):
    _, spec, pki = demo
    conn = connect(spec, pki, service, replica)
    try:
        r, body = get_json(conn, "/inference/study?x=1", {"X-Forwarded-For": "192.0.2.10"})
        svc = spec.service(service)
        rep = next(x for x in svc.replicas if x.name == replica)
        assert r.status == 200
        assert r.getheader("X-Pacslb-Service") == service
        assert r.getheader("X-Pacslb-Replica") == replica
        assert body["service"] == service and body["replica"] == replica
        assert body["address"] == rep.address and body["port"] == svc.port
        assert body["tls"] is (svc.tls is not None)
        assert body["path"] == "/inference/study" and body["method"] == "GET"
        assert body["x_forwarded_for"] == "192.0.2.10"
        assert body["client"] == "127.0.0.1"
        conn.request("GET", "/health")
        h = conn.getresponse()
        assert (h.status, h.read()) == (200, b"OK")
    finally:
        conn.close()


def test_keep_alive_100_requests_on_one_connection(demo):
    proc, spec, pki = demo
    before = proc.control.state("WFC_inference_443", "r1")["accepted"]
    conn = connect(spec, pki, "WFC_inference_443", "r1")
    try:
        ports = set()
        for i in range(100):
            r, body = get_json(conn, f"/req/{i}")
            assert r.status == 200 and body["path"] == f"/req/{i}"
            assert not r.will_close
            ports.add(body["client_port"])
        assert len(ports) == 1  # one TCP connection carried all 100
    finally:
        conn.close()
    assert proc.control.state("WFC_inference_443", "r1")["accepted"] == before + 1


@pytest.mark.parametrize("service", ["WFC_inference_443", "WFC_inference_80"])
def test_ten_megabytes_exactly(demo, service):
    _, spec, pki = demo
    conn = connect(spec, pki, service, "r2", timeout=30)
    try:
        conn.request("GET", f"/bytes/{BIG}")
        r = conn.getresponse()
        assert r.status == 200
        assert int(r.getheader("Content-Length")) == BIG
        total = 0
        while chunk := r.read(1 << 20):
            total += len(chunk)
        assert total == BIG
        # the connection is still good afterwards
        r2, body = get_json(conn, "/after")
        assert body["path"] == "/after"
    finally:
        conn.close()


def amqp_connect(spec, replica):
    s = spec.service("WFC_RMQAMQP")
    addr = next(r.address for r in s.replicas if r.name == replica)
    sock = socket.create_connection((addr, s.port), timeout=10)
    return sock


def read_frame(sock, buf=b""):
    while True:
        parsed = amqp.parse_frame(buf)
        if parsed is not None:
            f, used = parsed
            return f, buf[used:]
        chunk = sock.recv(65536)
        assert chunk, "connection closed before a whole frame"
        buf += chunk


def recv_all(sock) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


@pytest.mark.parametrize("replica", ["r1", "r2"])
def test_amqp_handshake(demo, replica):
    _, spec, _ = demo
    with amqp_connect(spec, replica) as sock:
        sock.sendall(amqp.PROTOCOL_HEADER)
        f, rest = read_frame(sock)
        assert (f.type, f.channel) == (amqp.FRAME_METHOD, 0)
        cm, args = f.method()
        assert cm == amqp.CONNECTION_START
        start = amqp.decode_connection_start(args)
        assert (start.version_major, start.version_minor) == (0, 9)
        assert start.server_properties["product"] == "pacslb-demo"
        assert start.server_properties["replica"] == replica
        assert start.server_properties["service"] == "WFC_RMQAMQP"
        assert start.mechanisms == "PLAIN AMQPLAIN" and start.locales == "en_US"
        sock.sendall(amqp.connection_start_ok({"product": "pytest"}))
        f, rest = read_frame(sock, rest)
        assert f.method()[0] == amqp.CONNECTION_TUNE
        sock.sendall(amqp.connection_tune_ok() + amqp.connection_open("/"))
        f, rest = read_frame(sock, rest)
        assert f.method()[0] == amqp.CONNECTION_OPEN_OK
        sock.sendall(amqp.connection_close(200, "bye"))
        f, rest = read_frame(sock, rest)
        assert f.method()[0] == amqp.CONNECTION_CLOSE_OK
        assert rest + recv_all(sock) == b""  # and the server closes


def test_amqp_wrong_header_gets_the_right_one_and_close(demo):
    _, spec, _ = demo
    with amqp_connect(spec, "r1") as sock:
        sock.sendall(b"AMQP\x01\x01\x00\x09")
        assert recv_all(sock) == amqp.PROTOCOL_HEADER
    with amqp_connect(spec, "r1") as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert recv_all(sock) == amqp.PROTOCOL_HEADER


def refused(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.parametrize("service", ["WFC_inference_443", "WFC_RMQAMQP"])
def test_stop_refuses_and_start_restores(demo, service):
    proc, spec, pki = demo
    ctl = proc.control
    svc = spec.service(service)
    r1 = svc.replicas[0]
    # an open connection to r1 before the stop, past the TLS handshake and in use
    held = None
    if svc.kind == "http":
        held = connect(spec, pki, service, "r1")
        get_json(held, "/before")
    else:
        held = amqp_connect(spec, "r1")
        held.sendall(amqp.PROTOCOL_HEADER)
        assert read_frame(held)[0].method()[0] == amqp.CONNECTION_START
    try:
        assert ctl.state(service, "r1")["connections"] >= 1
        st = ctl.stop(service, "r1")
        assert st["state"] == "stopped" and st["connections"] == 0
        assert refused(r1.address, svc.port)
        if svc.kind == "http":
            # the kept-alive connection was closed: the next request on it fails
            with pytest.raises((http.client.HTTPException, OSError)):
                get_json(held, "/after-stop")
        else:
            held.settimeout(5)
            try:
                assert held.recv(1) == b""  # closed by the replica
            except ConnectionResetError:
                pass
        states = {(s["service"], s["replica"]): s["state"] for s in ctl.replicas()}
        assert states[(service, "r1")] == "stopped"
        assert states[(service, "r2")] == "up"
        if svc.kind == "http":
            conn = connect(spec, pki, service, "r2")
            r, body = get_json(conn, "/")
            assert body["replica"] == "r2"
            conn.close()
        # stopping twice is harmless
        assert ctl.stop(service, "r1")["state"] == "stopped"
        assert ctl.start(service, "r1")["state"] == "up"
        assert not refused(r1.address, svc.port)
        if svc.kind == "http":
            conn = connect(spec, pki, service, "r1")
            conn.request("GET", "/health")
            assert conn.getresponse().status == 200
            conn.close()
    finally:
        held.close()
        ctl.start(service, "r1")


def test_unhealthy_and_service_wide_actions(demo):
    proc, spec, pki = demo
    ctl = proc.control
    svc = "WFC_inference_80"
    ctl.set_healthy(svc, "r2", False)
    try:
        conn = connect(spec, pki, svc, "r2")
        conn.request("GET", "/health")
        r = conn.getresponse()
        assert (r.status, r.read()) == (503, b"unhealthy")
        conn.close()
    finally:
        ctl.set_healthy(svc, "r2", True)
    states = ctl.stop(svc)  # every replica of the service
    try:
        assert [s["state"] for s in states] == ["stopped", "stopped"]
        for rep in spec.service(svc).replicas:
            assert refused(rep.address, spec.service(svc).port)
    finally:
        states = ctl.start(svc)
    assert [s["state"] for s in states] == ["up", "up"]


def test_control_unknown_names_are_404(demo):
    from pacslb.demo import DemoError

    proc, _, _ = demo
    with pytest.raises(DemoError, match="404"):
        proc.control.stop("nope", "r1")
    with pytest.raises(DemoError, match="404"):
        proc.control.stop("WFC_inference_80", "r9")
    with pytest.raises(DemoError, match="404"):
        proc.control.action("WFC_inference_80", "r1", "explode")


# ---------------------------------------------------------------- process life


def proc_state(pid: int) -> str | None:
    """The state letter from /proc/PID/stat, or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except FileNotFoundError:
        return None
    return stat[stat.rindex(")") + 2]


def children_of(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == pid:
            out.append(int(d))
    return out


def test_sigterm_ends_the_process_with_no_leftovers(tmp_path):
    spec = demo_spec_for(
        [("a", free_port(), "http"), ("mq", free_port(), "amqp")],
        second_octet=SECOND_OCTET,
        first_subnet=100,
        control_port=free_port(),
    )
    proc = DemoProcess(spec, max_lifetime=120)
    proc.start()
    pid = proc.pid
    try:
        assert proc_state(pid) in ("S", "R")
        assert children_of(pid) == []
        # an open connection while it exits
        held = socket.create_connection((spec.services[0].replicas[0].address, spec.services[0].port))
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while proc_state(pid) not in ("Z", None) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc_state(pid) in ("Z", None), "did not exit within 10 s of SIGTERM"
        assert json.loads(proc.read_line(5)) == {"event": "stopped", "reason": "SIGTERM"}
        assert proc.proc.wait(5) == 0
        assert proc_state(pid) is None  # reaped: no zombie left
        held.close()
        for s in spec.services:
            for r in s.replicas:
                assert refused(r.address, s.port)
        assert refused(spec.control_host, spec.control_port)
    finally:
        proc.stop()


def test_stopped_line_and_exit_status(tmp_path):
    spec = demo_spec_for([("a", free_port(), "http")], second_octet=SECOND_OCTET, first_subnet=120)
    proc = DemoProcess(spec, max_lifetime=120)
    proc.start()
    try:
        os.kill(proc.pid, signal.SIGINT)
        line = proc.read_line(10)
        assert json.loads(line) == {"event": "stopped", "reason": "SIGINT"}
        assert proc.proc.wait(10) == 0
    finally:
        proc.stop()


def test_bind_failure_is_reported(tmp_path):
    port = free_port()
    blocker = socket.socket()
    blocker.bind((f"127.{SECOND_OCTET}.130.1", port))
    blocker.listen()
    try:
        spec = demo_spec_for([("a", port, "http")], second_octet=SECOND_OCTET, first_subnet=130)
        spec.write(tmp_path / "spec.json")
        out = subprocess.run(
            [sys.executable, "-m", "pacslb.demo.services", "--spec", str(tmp_path / "spec.json"),
             "--max-lifetime", "30"],
            capture_output=True, timeout=30,
        )  # fmt: skip
        assert out.returncode == 1
        msg = json.loads(out.stdout.splitlines()[0])
        assert msg["event"] == "error" and "cannot listen" in msg["message"]
    finally:
        blocker.close()


def test_bad_spec_is_reported(tmp_path):
    (tmp_path / "spec.json").write_text('{"services": [{"name": "a"}]}')
    out = subprocess.run(
        [sys.executable, "-m", "pacslb.demo", "--spec", str(tmp_path / "spec.json")],
        capture_output=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 1
    msg = json.loads(out.stdout.splitlines()[0])
    assert msg["event"] == "error" and "services[0].port" in msg["message"]


def test_exits_when_parent_stdin_closes(tmp_path):
    spec = demo_spec_for([("a", free_port(), "http")], second_octet=SECOND_OCTET, first_subnet=140)
    proc = DemoProcess(spec, max_lifetime=120)
    proc.start()
    try:
        proc.proc.stdin.close()
        assert proc.proc.wait(10) == 0
    finally:
        proc.stop()
