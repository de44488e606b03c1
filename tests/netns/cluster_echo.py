"""The long-lived flows' real server of the cluster bed (tests/support/cluster_bed.py), one asyncio loop.

On connect it sends "NAME PEER\n" (PEER: the address the connection came from, i.e. the node whose HAProxy
opened it); then every line it receives is answered with "NAME LINE\n". The layer 4 tests' l4_server.py speaks
the same protocol with a thread per connection; thousands of flows held at once need one loop instead.
Usage: python cluster_echo.py NAME ADDRESS PORT   (prints "ready" once it listens)
"""

import asyncio
import resource
import sys

name, address, port = sys.argv[1], sys.argv[2], int(sys.argv[3])


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    peer = writer.get_extra_info("peername")[0]
    try:
        writer.write(f"{name} {peer}\n".encode())
        while line := await reader.readline():
            writer.write(f"{name} ".encode() + line)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def main() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # one descriptor per flow
    server = await asyncio.start_server(serve, address, port, backlog=4096, reuse_address=True)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
