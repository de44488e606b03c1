"""dicom-echo against real peers: dcmtk's storescp (answers C-ECHO) and dcmqrscp (refuses unknown called AE
titles), and pynetdicom's own SCP (the reference of the codec)."""

from __future__ import annotations

import asyncio

import pytest

from pacslb.health import Checker, DicomEchoProbe, Target, Watch, probe_for
from pacslb.model.config import DicomEchoCheck
from support.net import LOOPBACK, free_port

pytestmark = pytest.mark.engine


async def test_up_while_storescp_runs_and_down_within_fall_after_it_stops(dicom_scp):
    scp = dicom_scp("ARCHIVE")
    probe = probe_for(DicomEchoCheck(type="dicom-echo", called_ae="ARCHIVE", interval="2s", timeout="2s"))
    assert isinstance(probe, DicomEchoProbe)
    result = await probe.probe(Target(LOOPBACK, scp.port))
    assert result.up and result.reason == "C-ECHO success"

    changes: list[tuple[bool, str]] = []

    async def on_change(watch: Watch) -> None:
        changes.append((watch.up, watch.last.reason))

    checker = Checker(on_change)
    watch = Watch(("pacs", "archive1"), Target(LOOPBACK, scp.port), probe, interval=0.2, rise=2, fall=3)
    checker.replace([watch])
    try:
        await _until(lambda: watch.last is not None and watch.last.up, "a first passing check")
        assert watch.up and changes == []
        await asyncio.to_thread(scp.stop)
        await _until(lambda: not watch.up, "the real server to go down")
        assert changes == [(False, watch.last.reason)]
        assert "connect failed" in watch.last.reason
    finally:
        await checker.close()


async def test_down_with_the_archives_reason_when_the_called_ae_title_is_wrong(dicom_scp):
    qr = dicom_scp("ARCHIVE", kind="dcmqrscp")
    good = await DicomEchoProbe(timeout=5, called_ae="ARCHIVE").probe(Target(LOOPBACK, qr.port))
    assert good.up, good.reason
    wrong = await DicomEchoProbe(timeout=5, called_ae="NOT-THE-PACS").probe(Target(LOOPBACK, qr.port))
    assert not wrong.up
    assert wrong.reason == "association rejected (permanent, by the service user): called AE title not recognised"


async def test_down_when_nothing_listens_or_the_port_never_answers():
    refused = await DicomEchoProbe(timeout=2).probe(Target(LOOPBACK, free_port()))
    assert not refused.up and refused.reason == "connect failed: refused or unreachable"
    silent = await asyncio.start_server(lambda r, w: None, LOOPBACK, 0)  # accepts and says nothing
    async with silent:
        result = await DicomEchoProbe(timeout=0.5).probe(Target(LOOPBACK, silent.sockets[0].getsockname()[1]))
    assert not result.up and "no answer to the association request" in result.reason


async def _until(condition, what: str, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_pynetdicoms_own_scp_accepts_our_association_and_echo():
    """pynetdicom, the reference our codec is tested against, as a live peer: its state machine must
    accept our PDUs, see our AE titles and answer our C-ECHO; and reject a called AE title it does not know."""
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import Verification

    seen: list[tuple[str, str, int]] = []

    def on_echo(event):
        seen.append((event.assoc.requestor.ae_title, event.assoc.acceptor.ae_title, event.request.MessageID))
        return 0x0000

    ae = AE(ae_title="REFSCP")
    ae.add_supported_context(Verification)
    ae.require_called_aet = True
    server = ae.start_server((LOOPBACK, 0), block=False, evt_handlers=[(evt.EVT_C_ECHO, on_echo)])
    try:
        target = Target(LOOPBACK, server.server_address[1])
        result = await DicomEchoProbe(timeout=5, calling_ae="LB1", called_ae="REFSCP").probe(target)
        assert result.up and result.reason == "C-ECHO success"
        assert len(seen) == 1 and seen[0][:2] == ("LB1", "REFSCP")
        wrong = await DicomEchoProbe(timeout=5, called_ae="OTHER").probe(target)
        assert wrong.reason == "association rejected (permanent, by the service user): called AE title not recognised"
    finally:
        server.shutdown()
