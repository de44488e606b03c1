"""DicomEchoProbe on loopback against scripted archives whose PDUs pynetdicom encodes and decodes
(the real archives, dcmtk's storescp and dcmqrscp, are in tests/health/test_dicom_echo.py)."""

from __future__ import annotations

import asyncio
import struct

import dicom_reference as ref

from pacslb.health import DicomEchoProbe, Target
from pacslb.health.base import Result


async def _read_pdu(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(6)
    return header + await reader.readexactly(struct.unpack(">I", header[2:])[0])


class Archive:
    """A loopback archive that plays `script(reader, writer, seen)`; `seen` collects what the check sent."""

    def __init__(self, script) -> None:
        self.script, self.seen, self.server = script, [], None

    async def __aenter__(self) -> Target:
        async def serve(reader, writer):
            try:
                await self.script(reader, writer, self.seen)
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(serve, "127.0.0.1", 0)
        return Target("127.0.0.1", self.server.sockets[0].getsockname()[1])

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        await self.server.wait_closed()


async def _associate(reader, writer, seen, answer: bytes | None = None) -> None:
    rq = await _read_pdu(reader)
    seen.append(ref.decode_associate_rq(rq))
    answer = answer if answer is not None else ref.associate_ac()
    # Split the answer across reads: the check must put PDUs together from several reads.
    writer.write(answer[:5])
    await writer.drain()
    await asyncio.sleep(0.02)
    writer.write(answer[5:])
    await writer.drain()


async def _echo(reader, writer, seen, status: int = 0) -> None:
    rq = ref.decode_echo_rq(await _read_pdu(reader))
    seen.append(rq)
    rsp = ref.echo_rsp(status, rq.MessageID, max_pdu=40)  # fragmented over several P-DATA-TF
    for i in range(0, len(rsp), 7):
        writer.write(rsp[i : i + 7])
    await writer.drain()


async def test_up_against_a_scripted_archive_with_split_and_fragmented_pdus():
    async def script(reader, writer, seen):
        await _associate(reader, writer, seen)
        await _echo(reader, writer, seen)
        seen.append((await _read_pdu(reader))[0])
        writer.write(ref.release_rp())
        await writer.drain()

    archive = Archive(script)
    async with archive as target:
        result = await DicomEchoProbe(timeout=5, calling_ae="LB1", called_ae="ARCHIVE").probe(target)
    assert result == Result(True, "C-ECHO success")
    association, echo, release = archive.seen
    assert (association.calling_ae_title, association.called_ae_title) == ("LB1", "ARCHIVE")
    assert echo.AffectedSOPClassUID == "1.2.840.10008.1.1" and release == 0x05  # A-RELEASE-RQ


async def test_message_ids_differ_from_check_to_check():
    async def script(reader, writer, seen):
        await _associate(reader, writer, seen)
        await _echo(reader, writer, seen)
        await _read_pdu(reader)
        writer.write(ref.release_rp())

    archive = Archive(script)
    probe = DicomEchoProbe(timeout=5)
    async with archive as target:
        assert (await probe.probe(target)).up and (await probe.probe(target)).up
    ids = [s.MessageID for s in archive.seen if hasattr(s, "MessageID")]
    assert len(ids) == 2 and ids[0] != ids[1]


async def test_down_with_the_status_of_a_failing_echo():
    async def script(reader, writer, seen):
        await _associate(reader, writer, seen)
        await _echo(reader, writer, seen, status=0xA700)
        await _read_pdu(reader)
        writer.write(ref.release_rp())

    async with Archive(script) as target:
        assert await DicomEchoProbe(timeout=5).probe(target) == Result(False, "C-ECHO status 0xA700")


async def test_down_when_the_archive_aborts_mid_association():
    async def script(reader, writer, seen):
        await _associate(reader, writer, seen)
        await _read_pdu(reader)  # the C-ECHO-RQ
        writer.write(ref.abort(0))
        await writer.drain()
        await reader.read()  # until the check closes

    async with Archive(script) as target:
        result = await DicomEchoProbe(timeout=5).probe(target)
    assert result == Result(False, "association aborted by the server (A-ABORT) during the C-ECHO")


async def test_down_when_the_archive_rejects_or_closes():
    async def rejects(reader, writer, seen):
        await _associate(reader, writer, seen, ref.associate_rj(2, 3, 1))

    async with Archive(rejects) as target:
        result = await DicomEchoProbe(timeout=5).probe(target)
    assert result.reason == "association rejected (transient, by the service provider (presentation)): temporary congestion"

    async def closes_after_accepting(reader, writer, seen):
        await _associate(reader, writer, seen)

    async with Archive(closes_after_accepting) as target:
        result = await DicomEchoProbe(timeout=5).probe(target)
    assert result == Result(False, "connection closed by the server before the C-ECHO answer (A-P-ABORT)")


async def test_down_when_the_peer_accepts_tcp_and_never_answers():
    async def silent(reader, writer, seen):
        seen.append(await reader.read())  # reads until the check closes, answers nothing

    archive = Archive(silent)
    async with archive as target:
        result = await DicomEchoProbe(timeout=1).probe(target)
        await _until(lambda: archive.seen)
    assert result == Result(False, "TCP accepted but no answer to the association request within 1s")
    assert archive.seen[0][0] == 0x01  # it got our A-ASSOCIATE-RQ, then the close


async def test_an_archive_that_never_answers_the_release_is_up_and_gets_an_abort():
    async def no_release(reader, writer, seen):
        await _associate(reader, writer, seen)
        await _echo(reader, writer, seen)
        seen.append((await _read_pdu(reader))[0])  # A-RELEASE-RQ, left unanswered
        seen.append((await _read_pdu(reader))[0])  # what the check sends when its time is up

    archive = Archive(no_release)
    async with archive as target:
        result = await DicomEchoProbe(timeout=2).probe(target)
        await _until(lambda: len(archive.seen) == 4)
    assert result == Result(True, "C-ECHO success")
    assert archive.seen[2:] == [0x05, 0x07]  # A-RELEASE-RQ, then A-ABORT


async def test_down_when_the_port_speaks_something_else():
    async def http(reader, writer, seen):
        await reader.read(1)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with Archive(http) as target:
        result = await DicomEchoProbe(timeout=5).probe(target)
    assert not result.up and result.reason.startswith("not DICOM (unknown PDU type 0x48): b'HTTP/1.1 400")


async def test_down_when_nothing_listens():
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    result = await DicomEchoProbe(timeout=2).probe(Target("127.0.0.1", port))
    assert result == Result(False, "connect failed: refused or unreachable")


async def _until(condition, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out waiting for the scripted archive"
        await asyncio.sleep(0.01)
