"""Addresses and ports on loopback (nothing here leaves the machine).

free_port(host) -> int                  a TCP port nobody listens on, on that address
loopback_host(last_octet) -> str        127.X.Y.last_octet, X.Y random per test session (away from
                                        127.0.0.1 and from other sessions running at the same time)
accepts(port, host) -> bool             something accepts TCP connections there
http_get(host, port, path) -> (status, body)   one GET on a new connection
"""

from __future__ import annotations

import http.client
import random
import socket

LOOPBACK = "127.0.0.1"

# 127.X.Y.0/24 for this test session: away from 127.0.0.1 and from other sessions running at once.
_SESSION_NET = (random.randint(100, 199), random.randint(1, 254))


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def loopback_host(last_octet: int) -> str:
    """An address on lo (all of 127/8 is local) in this session's own /24."""
    return f"127.{_SESSION_NET[0]}.{_SESSION_NET[1]}.{last_octet}"


def accepts(port: int, host: str = LOOPBACK) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def http_get(host: str, port: int, path: str = "/", timeout: float = 5.0, source: str | None = None) -> tuple[int, str]:
    """One request on a new connection (from `source`, an address on lo, when given)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout, source_address=(source, 0) if source else None)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()
