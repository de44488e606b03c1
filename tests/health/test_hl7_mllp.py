"""hl7 against MLLP listeners in the test: one acknowledging AA, one answering AE, one that hangs, one with junk."""

from __future__ import annotations

import hl7
import pytest
from health_peers import MLLPResponder

from pacslb.health import HL7Probe, Target, probe_for
from pacslb.model.config import HL7Check
from support.net import LOOPBACK, free_port


@pytest.fixture
async def responder():
    started: list[MLLPResponder] = []

    async def make(*args, **kwargs) -> MLLPResponder:
        r = await MLLPResponder(*args, **kwargs).start()
        started.append(r)
        return r

    yield make
    for r in started:
        await r.stop()


async def test_aa_is_up_and_the_default_message_is_a_fresh_nmq(responder):
    engine = await responder("AA")
    probe = probe_for(HL7Check(type="hl7", receiving_application="RIS", timeout="2s"))
    first = await probe.probe(Target(LOOPBACK, engine.port))
    second = await probe.probe(Target(LOOPBACK, engine.port))
    assert first.up and first.reason == "HL7 answered AA" and second.up
    msh = [hl7.parse(m).segment("MSH") for m in engine.received]
    assert [str(m[9]) for m in msh] == ["NMQ^N01^NMQ_N01"] * 2
    assert str(msh[0][3]) == "PACSLB" and str(msh[0][5]) == "RIS"
    assert str(msh[0][10]) != str(msh[1][10])  # a fresh control ID per check


async def test_a_configured_message_is_sent_with_its_own_segments(responder):
    engine = await responder("AA")
    check = HL7Check(type="hl7", message=["MSH|^~\\&|LB|SITE|ADT|HOSP|||ADT^A01|x|P|2.3", "EVN|A01"])
    assert (await probe_for(check).probe(Target(LOOPBACK, engine.port))).up
    sent = hl7.parse(engine.received[0])
    assert str(sent.segment("MSH")[9]) == "ADT^A01" and str(sent.segment("EVN")[1]) == "A01"
    assert str(sent.segment("MSH")[10]) != "x"


async def test_ae_is_down_with_the_engines_text(responder):
    engine = await responder("AE", text="Unknown receiving application")
    result = await HL7Probe(timeout=2).probe(Target(LOOPBACK, engine.port))
    assert not result.up and result.reason == "HL7 answered AE: Unknown receiving application"


async def test_ar_is_down(responder):
    engine = await responder("AR")
    result = await HL7Probe(timeout=2).probe(Target(LOOPBACK, engine.port))
    assert not result.up and result.reason == "HL7 answered AR"


async def test_a_listener_that_hangs_is_down_after_the_timeout(responder):
    engine = await responder("hang")
    result = await HL7Probe(timeout=0.5).probe(Target(LOOPBACK, engine.port))
    assert not result.up and result.reason == "TCP accepted but no HL7 acknowledgement within 0.5s"
    assert len(engine.received) == 1


async def test_junk_and_nothing_listening_are_down(responder):
    junk = await responder(raw=b"\x0bHTTP/1.1 400 Bad Request\x1c\x0d")
    result = await HL7Probe(timeout=2).probe(Target(LOOPBACK, junk.port))
    assert not result.up and result.reason.startswith("HL7 answer without an MSA segment")
    unframed = await responder(raw=b"HTTP/1.1 400 Bad Request\r\n\r\n")
    result = await HL7Probe(timeout=0.5).probe(Target(LOOPBACK, unframed.port))
    assert not result.up and "no MLLP end block" in result.reason
    result = await HL7Probe(timeout=2).probe(Target(LOOPBACK, free_port()))
    assert not result.up and result.reason.startswith("connect failed")
