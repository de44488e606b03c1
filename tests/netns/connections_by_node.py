"""A client of the cluster tests: COUNT new connections to the VIP, AT_ONCE at a time, counted by the node that
took each one (run in the client namespace).

python connections_by_node.py ADDRESS PORT COUNT AT_ONCE TIMEOUT

Each connection sends `GET /` (HTTP/1.0) and reads the answer: the name of the node whose HAProxy carried it
(tests/netns/ha_http_server.py, given the nodes' addresses). Prints one JSON line at the end:
{"nodes": {node: connections}, "failed": n, "errors": {error: n}, "seconds": s}. An attempt without an answer
within TIMEOUT s fails; so the whole run is bounded by COUNT / AT_ONCE x TIMEOUT s.
"""

import asyncio
import json
import sys
import time
from collections import Counter

ADDRESS, PORT, COUNT, AT_ONCE, TIMEOUT = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])


async def attempt(nodes: Counter, errors: Counter) -> None:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(ADDRESS, PORT), TIMEOUT)
        try:
            writer.write(b"GET / HTTP/1.0\r\n\r\n")
            answer = await asyncio.wait_for(reader.read(), TIMEOUT)
        finally:
            writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n")[0]:
            raise ConnectionError(head.split(b"\r\n")[0].decode(errors="replace") or "no answer")
        nodes[body.decode(errors="replace").strip()] += 1
    except (OSError, asyncio.TimeoutError, ConnectionError) as exc:
        errors[f"{type(exc).__name__}: {exc}"[:80]] += 1


async def main() -> None:
    nodes: Counter = Counter()
    errors: Counter = Counter()
    began = time.monotonic()
    slots = asyncio.Semaphore(AT_ONCE)

    async def one() -> None:
        async with slots:
            await attempt(nodes, errors)

    await asyncio.gather(*(one() for _ in range(COUNT)))
    result = {"nodes": dict(nodes), "failed": sum(errors.values()), "errors": dict(errors), "seconds": time.monotonic() - began}
    print(json.dumps(result), flush=True)


asyncio.run(main())
