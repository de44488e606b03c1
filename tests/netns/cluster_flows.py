"""Long-lived flows through the cluster's VIP, run inside the client namespace of the cluster bed. Prints JSON lines.

    python cluster_flows.py VIP PORT COUNT [SECONDS]

Opens COUNT TCP connections to VIP:PORT (at most 100 connecting at once), sends "hello" on each and reads the
real server's greeting "RS PEER" (PEER: the node whose HAProxy carries the flow) and the echo; prints
{"opened": n, "failed": n, "nodes": {peer: flows}, "errors": {...}}. Then, for each line on stdin:

    echo    one small echo on every open flow, all at once; prints {"ok": {peer: n}, "broken": {peer: n}, "errors": {...}}
            (a flow that fails, is reset, closed or silent for 5 s is broken, closed, and counted once, under the
            node that carried it when it was opened)
    quit    closes every flow and exits (so does the end of stdin, or SECONDS, 600 by default, whichever is first)
"""

import asyncio
import json
import resource
import sys
import threading

vip, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
LIFETIME = float(sys.argv[4]) if len(sys.argv) > 4 else 600.0
TIMEOUT = 5.0
CONNECTING_AT_ONCE = 100


class Flow:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, node: str) -> None:
        self.reader, self.writer, self.node = reader, writer, node


def kind(exc: BaseException) -> str:
    return "timeout" if isinstance(exc, (asyncio.TimeoutError, TimeoutError)) else type(exc).__name__


def tally(counter: dict[str, int], key: str) -> None:
    counter[key] = counter.get(key, 0) + 1


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, text: str) -> str:
    writer.write(f"{text}\n".encode())
    await writer.drain()
    line = await asyncio.wait_for(reader.readline(), TIMEOUT)
    if not line:
        raise EOFError("closed")
    return line.decode().strip()


async def open_flow(gate: asyncio.Semaphore) -> Flow:
    async with gate:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(vip, port), TIMEOUT)
        try:
            writer.write(b"hello\n")
            greeting = (await asyncio.wait_for(reader.readline(), TIMEOUT)).decode().split()
            echo = await asyncio.wait_for(reader.readline(), TIMEOUT)
            if len(greeting) != 2 or not echo.endswith(b"hello\n"):
                raise EOFError(f"unexpected greeting {greeting} / echo {echo!r}")
        except BaseException:
            writer.close()
            raise
        return Flow(reader, writer, greeting[1])


async def echo_all(flows: list[Flow]) -> dict:
    async def one(flow: Flow) -> BaseException | None:
        try:
            answer = await exchange(flow.reader, flow.writer, "ping")
            return None if answer.endswith(" ping") else EOFError(f"unexpected answer {answer!r}")
        except (OSError, EOFError, asyncio.TimeoutError) as exc:
            return exc

    outcomes = await asyncio.gather(*(one(f) for f in flows))
    ok: dict[str, int] = {}
    broken: dict[str, int] = {}
    errors: dict[str, int] = {}
    for flow, exc in zip(flows, outcomes, strict=True):
        if exc is None:
            tally(ok, flow.node)
        else:
            tally(broken, flow.node)
            tally(errors, kind(exc))
            flow.writer.close()
    flows[:] = [f for f, exc in zip(flows, outcomes, strict=True) if exc is None]
    return {"ok": ok, "broken": broken, "errors": errors}


async def main() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    gate = asyncio.Semaphore(CONNECTING_AT_ONCE)
    results = await asyncio.gather(*(open_flow(gate) for _ in range(count)), return_exceptions=True)
    flows = [r for r in results if isinstance(r, Flow)]
    nodes: dict[str, int] = {}
    errors: dict[str, int] = {}
    for r in results:
        if isinstance(r, Flow):
            tally(nodes, r.node)
        else:
            tally(errors, kind(r))
    print(json.dumps({"opened": len(flows), "failed": count - len(flows), "nodes": nodes, "errors": errors}), flush=True)
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[str] = asyncio.Queue()

    def read_stdin() -> None:  # a daemon thread: a blocked read never holds the exit up
        for line in sys.stdin:
            loop.call_soon_threadsafe(commands.put_nowait, line.strip())
        loop.call_soon_threadsafe(commands.put_nowait, "quit")

    threading.Thread(target=read_stdin, daemon=True).start()
    while True:
        command = await commands.get()
        if command == "echo":
            print(json.dumps(await echo_all(flows)), flush=True)
        else:  # quit, or stdin closed
            break
    for flow in flows:
        flow.writer.close()


async def bounded() -> None:
    try:
        await asyncio.wait_for(main(), LIFETIME)
    except asyncio.TimeoutError:
        print(json.dumps({"error": f"lifetime of {LIFETIME:g} s reached"}), flush=True)


asyncio.run(bounded())
