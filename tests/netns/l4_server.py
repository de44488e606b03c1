"""A real server for the Layer 4 tests: TCP and UDP on one port, answering with its name and the peer's address.

TCP: on connect it sends "NAME PEER\n"; then every line it receives is answered with "NAME LINE\n" (so a
test can tell whether an established connection still works). UDP: each datagram gets "NAME PEER".
Usage: python l4_server.py NAME ADDRESS PORT
"""

import socket
import sys
import threading

name, address, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
FAMILY = socket.AF_INET6 if ":" in address else socket.AF_INET  # "::" for the IPv6 tests


def serve_tcp(conn: socket.socket, peer: str) -> None:
    with conn:
        try:
            conn.sendall(f"{name} {peer}\n".encode())
            buffer = b""
            while True:
                data = conn.recv(4096)
                if not data:
                    return
                buffer += data
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    conn.sendall(f"{name} {line.decode()}\n".encode())
        except OSError:
            return


def tcp() -> None:
    server = socket.socket(FAMILY)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((address, port))
    server.listen(512)
    while True:
        conn, peer = server.accept()
        threading.Thread(target=serve_tcp, args=(conn, peer[0]), daemon=True).start()


def udp() -> None:
    server = socket.socket(FAMILY, socket.SOCK_DGRAM)
    server.bind((address, port))
    while True:
        data, peer = server.recvfrom(4096)
        server.sendto(f"{name} {peer[0]}".encode(), peer)


threading.Thread(target=udp, daemon=True).start()
print("ready", flush=True)
tcp()
