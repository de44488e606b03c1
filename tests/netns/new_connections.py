"""A client of the failover bench: new connections to the VIP at a steady rate, each recorded (run in a namespace).

python new_connections.py ADDRESS PORT RATE SECONDS TIMEOUT READY

Starts a new TCP connection every 1/RATE s for SECONDS s, each one `GET /` (HTTP/1.0) answered with the name of
the node that took it (tests/netns/ha_http_server.py behind each node's HAProxy); an attempt that has no answer
within TIMEOUT s fails. Prints "ready" once READY attempts have succeeded (a baseline before the death), then, at the end, one JSON line: every
attempt as [start (CLOCK_MONOTONIC, shared by all namespaces), node or null, error or null]. Bounded: it ends
after SECONDS + TIMEOUT s at most.
"""

import asyncio
import json
import sys
import time

ADDRESS, PORT, RATE, SECONDS, TIMEOUT = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
READY = int(sys.argv[6])


async def attempt(results: list, ready: asyncio.Event) -> None:
    start = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(ADDRESS, PORT), TIMEOUT)
        try:
            writer.write(b"GET / HTTP/1.0\r\n\r\n")
            answer = await asyncio.wait_for(reader.read(), max(0.01, TIMEOUT - (time.monotonic() - start)))
        finally:
            writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.") or b" 200 " not in head.split(b"\r\n")[0]:
            raise ConnectionError(head.split(b"\r\n")[0].decode(errors="replace") or "no answer")
        results.append([start, body.decode(errors="replace").strip(), None])
        if sum(1 for r in results if r[1] is not None) >= READY:
            ready.set()
    except (OSError, asyncio.TimeoutError, ConnectionError) as exc:
        results.append([start, None, type(exc).__name__ if not str(exc) else f"{type(exc).__name__}: {exc}"[:80]])


async def main() -> None:
    results: list = []
    ready = asyncio.Event()
    tasks = []
    began = time.monotonic()
    count = int(RATE * SECONDS)

    async def announce() -> None:
        await ready.wait()
        print("ready", flush=True)

    announcer = asyncio.ensure_future(announce())
    for i in range(count):
        delay = began + i / RATE - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(attempt(results, ready)))
    await asyncio.gather(*tasks)
    announcer.cancel()
    print(json.dumps(sorted(results)), flush=True)


asyncio.run(main())
