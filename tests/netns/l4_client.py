"""The client of the Layer 4 tests, run inside the client namespace. Prints JSON.

l4_client.py tcp VIP PORT COUNT    COUNT new connections, one after the other: {"answers": ["rs1 10.99.0.2", ...]}
l4_client.py udp VIP PORT COUNT    COUNT datagrams, each from a new socket (a new flow)
l4_client.py hold VIP PORT         one connection kept open: prints the greeting, then for each line read
                                   on stdin sends it and prints the answer (or "ERROR ...")
"""

import json
import socket
import sys

mode, vip, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
TIMEOUT = 3.0


def tcp_once() -> str:
    try:
        with socket.create_connection((vip, port), timeout=TIMEOUT) as s:
            s.settimeout(TIMEOUT)
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(256)
                if not chunk:
                    break
                data += chunk
            return data.decode().strip() or "ERROR empty"
    except OSError as exc:
        return f"ERROR {exc}"


def udp_once() -> str:
    with socket.socket(socket.AF_INET6 if ":" in vip else socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(TIMEOUT)
        try:
            s.sendto(b"hello", (vip, port))
            return s.recvfrom(256)[0].decode()
        except OSError as exc:
            return f"ERROR {exc}"


if mode in ("tcp", "udp"):
    count = int(sys.argv[4])
    once = tcp_once if mode == "tcp" else udp_once
    print(json.dumps({"answers": [once() for _ in range(count)]}), flush=True)
elif mode == "hold":
    s = socket.create_connection((vip, port), timeout=TIMEOUT)
    s.settimeout(TIMEOUT)
    reader = s.makefile("rb")
    print(reader.readline().decode().strip(), flush=True)
    for line in sys.stdin:
        try:
            s.sendall(line.encode())
            print(reader.readline().decode().strip() or "ERROR closed", flush=True)
        except OSError as exc:
            print(f"ERROR {exc}", flush=True)
