"""A tiny authoritative DNS server on loopback UDP for tests: A records a test changes while it runs.

DNSResponder(host="127.0.0.1", port=0)   .start(), .stop(), .port
  .set(name, address)   answer `name` with this A record (TTL 1)
  .forget(name)         answer NXDOMAIN for it from now on
  .queries              how many questions it answered

Built on dnspython (a test dependency already: tests/netns/test_gslb.py), so that what HAProxy's resolvers
do when a name changes its address or stops resolving is tested against real DNS packets.
"""

from __future__ import annotations

import socket
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from support.net import LOOPBACK


class DNSResponder:
    def __init__(self, host: str = LOOPBACK, port: int = 0) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((host, port))
        self._sock.settimeout(0.1)
        self.host, self.port = self._sock.getsockname()[:2]
        self._records: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.queries = 0

    def set(self, name: str, address: str) -> None:
        with self._lock:
            self._records[name.rstrip(".").lower() + "."] = address

    def forget(self, name: str) -> None:
        with self._lock:
            self._records.pop(name.rstrip(".").lower() + ".", None)

    def start(self) -> "DNSResponder":
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self._sock.recvfrom(4096)
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            try:
                query = dns.message.from_wire(data)
            except Exception:  # noqa: BLE001 - a packet that is not DNS gets no answer
                continue
            self._sock.sendto(self._answer(query).to_wire(), peer)

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text().lower()
        with self._lock:
            address = self._records.get(name)
            self.queries += 1
        if address is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.A:
            response.answer.append(dns.rrset.from_text(question.name, 1, dns.rdataclass.IN, dns.rdatatype.A, address))
        # a known name asked for another type (AAAA): NOERROR with no answer
        return response
