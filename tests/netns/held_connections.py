"""A client holding long-lived HTTP/1.1 keep-alive connections to a VIP (run in a namespace), for the drain test.

python held_connections.py ADDRESS PORT COUNT LIFETIME

Opens COUNT connections, one `GET /` each (answered with the name of the node whose real server took it), keeps
them open, and prints one JSON line: the node of each connection (null if it failed). Then, for every line read on
stdin, sends one more `GET /` on each connection and prints one JSON line: per connection the node that answered,
or the error (a reset: the router sent the flow to a node without its socket). Ends at EOF or after LIFETIME s.
"""

import json
import select
import socket
import sys
import time

ADDRESS, PORT, COUNT, LIFETIME = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
END = time.monotonic() + LIFETIME


def ask(sock: socket.socket) -> str:
    """One request on the connection; the body of the answer (the node's name)."""
    sock.sendall(b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed")
        body += chunk
    return body.decode(errors="replace")


def each(socks: list) -> list:
    out = []
    for sock in socks:
        if sock is None:
            out.append(None)
            continue
        try:
            out.append(ask(sock))
        except OSError as exc:
            out.append(f"error: {type(exc).__name__}")
    return out


socks: list = []
for _ in range(COUNT):
    try:
        sock = socket.create_connection((ADDRESS, PORT), timeout=5)
        socks.append(sock)
    except OSError:
        socks.append(None)
print(json.dumps(each(socks)), flush=True)
while time.monotonic() < END:
    ready, _, _ = select.select([sys.stdin], [], [], max(0.0, END - time.monotonic()))
    if not ready or not sys.stdin.readline():
        break
    print(json.dumps(each(socks)), flush=True)
for sock in socks:
    if sock is not None:
        sock.close()
