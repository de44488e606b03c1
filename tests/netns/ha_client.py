"""The client of the HA tests: one request after another to the VIP, each on a new connection, timed.

    python ha_client.py once VIP PORT SOURCE            # one request from SOURCE; prints the answering server
    python ha_client.py loop VIP PORT SOURCE STOPFILE MAX_SECONDS
        # requests until STOPFILE exists (or MAX_SECONDS pass); prints JSON: [[start, end, ok, server], ...]

A request that gets no answer within TIMEOUT counts as failed (a SYN to a node that is gone would wait
for the kernel's 1 s retransmission otherwise); the loop then tries again at once.
"""

import json
import os
import socket
import sys
import time

TIMEOUT = 0.1
PAUSE = 0.01


def request(vip: str, port: int, source: str) -> tuple[bool, str]:
    try:
        with socket.create_connection((vip, port), timeout=TIMEOUT, source_address=(source, 0)) as s:
            s.settimeout(TIMEOUT * 5)
            s.sendall(f"GET / HTTP/1.0\r\nHost: {vip}\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(4096):
                data += chunk
    except OSError as exc:
        return False, type(exc).__name__
    head, _, body = data.partition(b"\r\n\r\n")
    ok = head.startswith(b"HTTP/1.") and b" 200 " in head.split(b"\r\n", 1)[0] + b" "
    return ok, body.decode(errors="replace") if ok else head[:40].decode(errors="replace")


def main() -> None:
    mode, vip, port, source = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    if mode == "once":
        ok, server = request(vip, port, source)
        print(json.dumps({"ok": ok, "server": server}))
        return
    stop_file, limit = sys.argv[5], float(sys.argv[6])
    records = []
    deadline = time.time() + limit
    while not os.path.exists(stop_file) and time.time() < deadline:
        start = time.time()
        ok, server = request(vip, port, source)
        records.append([start, time.time(), ok, server])
        if ok:
            time.sleep(PAUSE)
    print(json.dumps(records))


if __name__ == "__main__":
    main()
