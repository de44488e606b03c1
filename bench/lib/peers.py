"""The benchmarks' real servers: one small asyncio process each (so that one can be frozen alone), by kind.

    subprocess.Popen([sys.executable, "-c", PEER_CODE, KIND, PORT])    KIND: tcp, http, mllp or amqp

tcp accepts and closes; http answers 200 OK and closes; mllp answers every HL7 message with an ACK (AA); amqp sends
Connection.Start (pacslb.demo.amqp). Used by bench/health_checks.py and bench/faults.py.
"""

PEER_CODE = r"""
import asyncio, sys
kind, port = sys.argv[1], int(sys.argv[2])
HTTP = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK"
async def tcp(r, w):
    w.close()
async def http(r, w):
    try:
        await r.readuntil(b"\r\n\r\n"); w.write(HTTP); await w.drain()
    except Exception: pass
    w.close()
async def mllp(r, w):
    try:
        while True:
            data = await r.readuntil(b"\x1c\r")
            msh = data[data.index(b"\x0b") + 1:].split(b"\r", 1)[0].split(b"|")
            ack = b"MSH|^~\\&|ENGINE|HOSP|" + msh[2] + b"|" + msh[3] + b"|" + msh[6] + b"||ACK^N01^ACK|A" + msh[9] + b"|P|2.5\rMSA|AA|" + msh[9] + b"\r"
            w.write(b"\x0b" + ack + b"\x1c\r"); await w.drain()
    except Exception: pass
    w.close()
async def amqp(r, w):
    from pacslb.demo.amqp import connection_start
    try:
        await r.readexactly(8); w.write(connection_start({"product": "faults-peer"})); await w.drain()
        await r.read(1)
    except Exception: pass
    w.close()
async def main():
    server = await asyncio.start_server({"tcp": tcp, "http": http, "mllp": mllp, "amqp": amqp}[kind], "127.0.0.1", port,
                                        backlog=4096)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""
