"""A TLS handshake client for the benchmarks: new connections as fast as it can, full or resumed, no request.

    python bench/lib/handshakes.py HOST PORT SECONDS full|resumed   # prints one JSON line

Unlike `openssl s_time`, it ends every connection with a close_notify (SSL unwrap): a server removes the
session of a connection that ends without one from its cache (OpenSSL), so s_time's resumed handshakes are
never resumed by HAProxy. Certificates are not verified: the server's work is the same, the client's is less.
"""

from __future__ import annotations

import json
import socket
import ssl
import sys
import time


def handshakes(host: str, port: int, seconds: float, resumed: bool) -> dict[str, int]:
    """Connect, handshake, close cleanly, again until `seconds` have passed; counts of full and resumed handshakes."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    session = None
    counts = {"handshakes": 0, "resumed": 0, "failed": 0}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=5) as raw:
                sock = ctx.wrap_socket(raw, server_hostname=host, session=session if resumed else None)
                counts["handshakes"] += 1
                counts["resumed"] += int(sock.session_reused)
                try:
                    sock.unwrap()  # close_notify both ways (it also reads TLS 1.3's session tickets)
                except (OSError, ssl.SSLError):
                    pass
                if resumed and (session is None or not sock.session_reused):
                    session = sock.session
        except (OSError, ssl.SSLError):
            counts["failed"] += 1
    return counts


if __name__ == "__main__":
    host, port, seconds, kind = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    print(json.dumps(handshakes(host, port, seconds, kind == "resumed")), flush=True)
