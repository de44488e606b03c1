"""A DNS client for the GSLB bed (run in a client namespace): dnspython, one JSON line out.

python gslb_client.py SERVER PORT query '{"name": ..., "type": "A", "subnet": "10.61.0.0/24", "source": ...}'
    -> {"rcode": "NOERROR", "answers": [...], "ttl": 30, "scope": 16, "authority": ["SOA"], "aa": true}
python gslb_client.py SERVER PORT batch '[{"name": ..., "type": ..., "subnet": ..., "source": ...}, ...]'
    -> [one query's result, ...]   (one process for many queries: a Python start costs about a second here)
python gslb_client.py SERVER PORT split '{"name": ..., "count": 10000, "source": ...}'
    -> {"counts": {"10.50.0.11": 7512, ...}, "seconds": 2.1}   (one socket, one query at a time, no EDNS:
       the answer's address is the reply's last 4 bytes)
python gslb_client.py SERVER PORT watch '{"name": ..., "subnet": ..., "old": "10.50.0.11", "timeout": 20}'
    prints "ready", then polls every 20 ms until the answer is no longer `old`:
    -> {"answer": [...], "at": <time.monotonic() of the first changed answer>}   (the clock is the host's)
python gslb_client.py SERVER PORT raw '{"packets": ["<hex>", ...], "tcp": false}'
    -> {"replies": ["<hex>" | null, ...]}   UDP: each packet is followed by a well-formed probe on the same socket;
       once the probe is answered, the server has read the packet (one receiver reads a socket in order), so its
       reply comes at most LATE_REPLY later (it answers from several threads); null when none came.
       TCP: one connection per packet; null when the server closed it or said nothing within 2 s.
python gslb_client.py SERVER PORT axfr '{"zone": ...}'  -> {"rcode": ..., "records": n} or {"error": ...}
"""

from __future__ import annotations

import json
import socket
import sys
import time

import dns.edns
import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.xfr
import dns.zone

LATE_REPLY = 0.5  # a packet's reply may follow the probe's: PowerDNS answers from several threads
SERVER, PORT, COMMAND, ARGS = sys.argv[1], int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])


def make(name: str, rtype: str = "A", subnet: str | None = None) -> dns.message.Message:
    options = []
    if subnet:
        address, prefix = subnet.split("/")
        options.append(dns.edns.ECSOption(address, int(prefix)))
    return dns.message.make_query(name, rtype, use_edns=0, options=options)


def ask(query: dns.message.Message, source: str | None, sock: socket.socket | None = None) -> dns.message.Message:
    return dns.query.udp(query, SERVER, port=PORT, timeout=3, source=source, sock=sock)


def describe(reply: dns.message.Message) -> dict:
    answers, ttl = [], None
    for rrset in reply.answer:
        ttl = rrset.ttl
        answers += [r.to_text() for r in rrset]
    scope = None
    for option in reply.options:
        if isinstance(option, dns.edns.ECSOption):
            scope = option.scopelen
    return {"rcode": dns.rcode.to_text(reply.rcode()), "answers": sorted(answers), "ttl": ttl, "scope": scope,
            "authority": [dns.rdatatype.to_text(r.rdtype) for r in reply.authority], "aa": bool(reply.flags & 0x0400)}  # fmt: skip


def raw_udp(data: bytes) -> str | None:
    probe = make("pacs.test", "SOA")
    probe.id = 0xBEEF
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.connect((SERVER, PORT))
        sock.send(data)
        sock.send(probe.to_wire())
        found, probed = None, False
        while found is None:
            try:
                reply = sock.recv(65535)
            except socket.timeout:
                break
            if reply[:2] == b"\xbe\xef":
                probed = True
                sock.settimeout(LATE_REPLY)  # the server read the packet before the probe: a reply is at most late
            else:
                found = reply.hex()
        return found if found is not None or probed else None


def raw_tcp(data: bytes) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        sock.connect((SERVER, PORT))
        try:
            sock.sendall(len(data).to_bytes(2, "big") + data)
            size = int.from_bytes(sock.recv(2), "big")
            reply = b""
            while len(reply) < size:
                chunk = sock.recv(size - len(reply))
                if not chunk:
                    break
                reply += chunk
            return reply.hex() if reply else None
        except (socket.timeout, ConnectionError):
            return None


def main() -> None:
    source = ARGS.get("source") if isinstance(ARGS, dict) else None
    if COMMAND == "query":
        out = describe(ask(make(ARGS["name"], ARGS.get("type", "A"), ARGS.get("subnet")), source))
    elif COMMAND == "batch":
        out = [describe(ask(make(q["name"], q.get("type", "A"), q.get("subnet")), q.get("source"))) for q in ARGS]
    elif COMMAND == "split":
        counts: dict[str, int] = {}
        wire = bytearray(dns.message.make_query(ARGS["name"], "A").to_wire())
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((source or "0.0.0.0", 0))
            sock.connect((SERVER, PORT))
            sock.settimeout(3)
            started = time.monotonic()
            for i in range(ARGS["count"]):
                wire[0:2] = (i & 0xFFFF).to_bytes(2, "big")
                sock.send(wire)
                while True:
                    reply = sock.recv(512)
                    if reply[0:2] == wire[0:2]:
                        break
                address = socket.inet_ntoa(reply[-4:])
                counts[address] = counts.get(address, 0) + 1
        out = {"counts": counts, "seconds": time.monotonic() - started}
    elif COMMAND == "watch":
        print("ready", flush=True)
        deadline = time.monotonic() + ARGS["timeout"]
        out = {"answer": None, "at": None}
        while time.monotonic() < deadline:
            try:
                answers = describe(ask(make(ARGS["name"], "A", ARGS.get("subnet")), source))["answers"]
            except dns.exception.Timeout:
                continue
            if answers != [ARGS["old"]]:
                out = {"answer": answers, "at": time.monotonic()}
                break
            time.sleep(0.02)
    elif COMMAND == "raw":
        out = {"replies": [raw_tcp(bytes.fromhex(p)) if ARGS.get("tcp") else raw_udp(bytes.fromhex(p)) for p in ARGS["packets"]]}
    elif COMMAND == "axfr":
        try:
            zone = dns.zone.from_xfr(dns.query.xfr(SERVER, ARGS["zone"], port=PORT, timeout=5, lifetime=10))
            out = {"rcode": "NOERROR", "records": len(zone.nodes)}
        except Exception as exc:  # noqa: BLE001 - any failure of the transfer is the answer the test wants
            out = {"error": f"{type(exc).__name__}: {exc}"}
    else:
        raise SystemExit(f"unknown command {COMMAND}")
    print(json.dumps(out), flush=True)


main()
