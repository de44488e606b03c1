"""The dicom-echo codec and state machine (pure; no sockets), with pynetdicom as the reference:
pynetdicom decodes what pacslb encodes, and encodes what an archive answers."""

from __future__ import annotations

import struct

import dicom_reference as ref
import pytest

from pacslb.health import dicom_pdu as d
from pacslb.health.base import Result

SUCCESS = Result(True, "C-ECHO success")


# --- what we send, read by pynetdicom ----------------------------------------------------------


def test_pynetdicom_reads_our_associate_rq():
    wire = d.associate_rq("LB1", "ARCHIVE", max_pdu=32768)
    primitive = ref.decode_associate_rq(wire)
    assert primitive.calling_ae_title == "LB1" and primitive.called_ae_title == "ARCHIVE"
    assert primitive.application_context_name == "1.2.840.10008.3.1.1.1"
    (context,) = primitive.presentation_context_definition_list
    assert (context.context_id, context.abstract_syntax, context.transfer_syntax) == (
        1, "1.2.840.10008.1.1", ["1.2.840.10008.1.2"]
    )  # fmt: skip
    assert primitive.maximum_length_received == 32768
    assert primitive.implementation_class_uid == d.IMPLEMENTATION_CLASS_UID
    names = [i.implementation_version_name for i in primitive.user_information if hasattr(i, "implementation_version_name")]
    assert names == [d.IMPLEMENTATION_VERSION]
    assert struct.unpack(">I", wire[2:6])[0] == len(wire) - 6


@pytest.mark.parametrize("title", ["", "   ", "A" * 17, "ÄRCHIV"])
def test_associate_rq_refuses_ae_titles_dicom_cannot_carry(title):
    with pytest.raises(ValueError, match="AE title"):
        d.associate_rq("PACSLB", title)


@pytest.mark.parametrize("message_id", [1, 7, 0xFFFF])
def test_pynetdicom_reads_our_echo_rq(message_id):
    primitive = ref.decode_echo_rq(d.p_data_tf(1, d.echo_command(message_id)))
    assert primitive.MessageID == message_id
    assert primitive.AffectedSOPClassUID == "1.2.840.10008.1.1"


def test_our_echo_rq_is_byte_for_byte_pynetdicoms():
    assert d.p_data_tf(1, d.echo_command(3)) == ref.echo_rq(3)


def test_release_and_abort_pdus_are_pynetdicoms():
    from pynetdicom import pdu

    assert d.release_rq() == pdu.A_RELEASE_RQ().encode()
    assert d.release_rp() == ref.release_rp()
    assert d.abort() == ref.abort(0)


# --- what an archive sends, written by pynetdicom, read by us ------------------------------------


def test_we_read_pynetdicoms_associate_ac():
    (pdu,), rest = d.split_pdus(ref.associate_ac())
    assert rest == b"" and pdu.type == d.A_ASSOCIATE_AC
    assert d.decode_associate_ac(pdu.body) == d.Acceptance(0, "1.2.840.10008.1.2", 16382)
    (refused,), _ = d.split_pdus(ref.associate_ac(context_result=3))
    assert d.decode_associate_ac(refused.body).context_result == 3


# (result, source, diagnostic): every A-ASSOCIATE-RJ PS3.8 defines, worded as pynetdicom words it
REJECTIONS = [(r, 1, n) for r in (1, 2) for n in (1, 2, 3, 7)] + [(1, 2, 1), (2, 2, 2), (2, 3, 1), (2, 3, 2)]


@pytest.mark.parametrize("result, source, diagnostic", REJECTIONS)
def test_rejections_are_worded_as_pynetdicom_words_them(result, source, diagnostic):
    wire = ref.associate_rj(result, source, diagnostic)
    (pdu,), _ = d.split_pdus(wire)
    assert d.decode_associate_rj(pdu.body).words() == ref.rejection_words(wire)


@pytest.mark.parametrize("status", [0x0000, 0x0110, 0x0122, 0xC000])
def test_we_read_pynetdicoms_echo_rsp(status):
    (pdu,), _ = d.split_pdus(ref.echo_rsp(status, message_id=9))
    ((context_id, header, command),) = d.decode_pdvs(pdu.body)
    assert (context_id, header) == (1, 0x03)
    assert d.decode_echo_response(command) == d.EchoResponse(d.C_ECHO_RSP, 9, status)


def test_split_pdus_waits_for_whole_pdus():
    wire = ref.associate_ac() + ref.echo_rsp()
    first = len(ref.associate_ac())
    for cut in range(len(wire) + 1):
        pdus, rest = d.split_pdus(wire[:cut])
        assert len(pdus) == (0 if cut < first else 1 if cut < len(wire) else 2)
        assert rest == wire[first if first <= cut < len(wire) else 0 if cut < first else cut : cut]


# --- the check as a state machine ----------------------------------------------------------------


def _run(answers: list[bytes], echo: d.CEcho | None = None, byte_by_byte: bool = False):
    """Feed an archive's answers, one read each (or one byte per read); (what we sent, the verdict)."""
    echo = echo or d.CEcho("PACSLB", "ARCHIVE")
    sent = [echo.start()]
    verdict = None
    for answer in answers:
        chunks = [answer[i : i + 1] for i in range(len(answer))] if byte_by_byte else [answer]
        for chunk in chunks:
            assert verdict is None, "fed after the verdict"
            out, verdict = echo.feed(chunk)
            if out:
                sent.append(out)
    return sent, verdict


@pytest.mark.parametrize("byte_by_byte", [False, True])
def test_a_whole_check_associate_echo_release(byte_by_byte):
    echo = d.CEcho("PACSLB", "ARCHIVE", message_id=5)
    sent, verdict = _run([ref.associate_ac(), ref.echo_rsp(0, 5), ref.release_rp()], echo, byte_by_byte)
    assert verdict == SUCCESS and echo.stage == "done"
    assert [s[0] for s in sent] == [d.A_ASSOCIATE_RQ, d.P_DATA_TF, d.A_RELEASE_RQ]
    assert ref.decode_echo_rq(sent[1]).MessageID == 5


def test_a_command_fragmented_over_several_p_data_tf_pdus():
    rsp = ref.echo_rsp(0, 1, max_pdu=30)
    assert len(d.split_pdus(rsp)[0]) > 2  # pynetdicom fragments the command set
    assert _run([ref.associate_ac(), rsp, ref.release_rp()])[1] == SUCCESS


def test_pdus_arriving_together_in_one_read():
    echo = d.CEcho("PACSLB", "ARCHIVE")
    echo.start()
    out, verdict = echo.feed(ref.associate_ac() + ref.echo_rsp(0)[:10])
    assert out[0] == d.P_DATA_TF and verdict is None
    out, verdict = echo.feed(ref.echo_rsp(0)[10:] + ref.release_rp())
    assert out == d.release_rq() and verdict == SUCCESS


def test_a_failing_status_is_the_verdict_after_the_release():
    echo = d.CEcho("PACSLB", "ARCHIVE")
    sent, verdict = _run([ref.associate_ac(), ref.echo_rsp(0x0110)], echo)
    assert verdict is None and echo.verdict == Result(False, "C-ECHO status 0x0110") and sent[-1] == d.release_rq()
    assert echo.feed(ref.release_rp()) == (b"", Result(False, "C-ECHO status 0x0110"))


def test_rejected_association():
    sent, verdict = _run([ref.associate_rj(1, 1, 7)])
    assert verdict == Result(False, "association rejected (permanent, by the service user): called AE title not recognised")
    sent, verdict = _run([ref.associate_rj(2, 3, 2)])
    assert verdict == Result(
        False, "association rejected (transient, by the service provider (presentation)): local limit exceeded"
    )


def test_refused_presentation_context_releases_and_is_down():
    echo = d.CEcho()
    sent, verdict = _run([ref.associate_ac(context_result=3)], echo)
    assert verdict is None and sent[-1] == d.release_rq()
    reason = "association accepted but the Verification SOP class was refused (abstract syntax not supported)"
    assert echo.feed(ref.release_rp()) == (b"", Result(False, reason))


def test_a_transfer_syntax_we_did_not_propose_is_aborted():
    sent, verdict = _run([ref.associate_ac(transfer_syntax="1.2.840.10008.1.2.1")])
    assert not verdict.up and "transfer syntax 1.2.840.10008.1.2.1" in verdict.reason
    assert sent[-1][0] == d.A_ABORT


def test_abort_before_and_during_the_association():
    assert _run([ref.abort(0)])[1] == Result(False, "association aborted by the server (A-ABORT)")
    _, provider = _run([ref.abort(2, 2)])
    assert provider == Result(False, "association aborted by the server's DICOM provider (A-ABORT: unexpected PDU)")
    _, mid = _run([ref.associate_ac(), ref.abort(0)])
    assert mid == Result(False, "association aborted by the server (A-ABORT) during the C-ECHO")


def test_an_abort_instead_of_the_release_keeps_the_echo_verdict():
    assert _run([ref.associate_ac(), ref.echo_rsp(0), ref.abort(0)])[1] == SUCCESS


def test_release_collision_is_answered():
    sent, verdict = _run([ref.associate_ac(), ref.echo_rsp(0), d.release_rq()])
    assert verdict == SUCCESS and sent[-1] == d.release_rp()


# (what the "archive" sends, words expected in the reason): junk, truncated PDUs, protocol mistakes
BROKEN = [
    (b"HTTP/1.1 400 Bad Request\r\n\r\n", "not DICOM (unknown PDU type 0x48)"),
    (b"\x02\x00\xff\xff\xff\xff", "not DICOM (A-ASSOCIATE-AC of 4294967295 bytes)"),
    (b"\x02\x00\x00\x00\x00\x04abcd", "broken A-ASSOCIATE-AC: A-ASSOCIATE-AC shorter than its fixed fields"),
    (b"\x03\x00\x00\x00\x00\x02\x00\x01", "broken A-ASSOCIATE-RJ: A-ASSOCIATE-RJ shorter than 4 bytes"),
    (b"\x07\x00\x00\x00\x00\x01\x00", "broken A-ABORT: A-ABORT shorter than 4 bytes"),
    (d._pdu(d.A_ASSOCIATE_AC, ref.associate_ac()[6:74] + b"\x21\x00\x00\x40"), "item 0x21 longer than the PDU"),
    (d._pdu(d.A_ASSOCIATE_AC, ref.associate_ac()[6:74] + b"\x21\x00"), "truncated item header"),
    (ref.release_rp(), "unexpected A-RELEASE-RP while waiting for the answer to the association request"),
    (ref.echo_rsp(0), "unexpected P-DATA-TF while waiting for the answer to the association request"),
]


@pytest.mark.parametrize("junk, words", BROKEN)
def test_broken_answers_to_the_association_request(junk, words):
    sent, verdict = _run([junk])
    assert verdict is not None and not verdict.up and words in verdict.reason
    assert sent[-1][0] == d.A_ABORT  # we tell the archive why we leave


def _p_data(command: bytes, header: int = 0x03) -> bytes:
    return d._pdu(d.P_DATA_TF, struct.pack(">IBB", len(command) + 2, 1, header) + command)


ECHO_BROKEN = [
    (_p_data(d.echo_command(1)), "command field 0x0030, not a C-ECHO-RSP"),
    (_p_data(d._element(0x0100, struct.pack("<H", d.C_ECHO_RSP))), "C-ECHO-RSP without a Status"),
    (_p_data(b"\x00\x00\x00"), "command set: truncated element header"),
    (_p_data(b"\x08\x00\x16\x00\x02\x00\x00\x00ab"), "element (0008,0016) outside group 0000"),
    (_p_data(struct.pack("<HHI", 0, 0x0100, 255) + b"\x30\x80"), "element (0000,0100) longer than the command"),
    (d._pdu(d.P_DATA_TF, b"\x00\x00\x00\x09\x01\x03"), "PDV length 9 does not fit the PDU"),
    (d._pdu(d.P_DATA_TF, b"\x00\x00"), "truncated PDV header"),
    (ref.echo_rsp(0, message_id=4), "C-ECHO-RSP for message ID 4, not ours (1)"),
]


@pytest.mark.parametrize("answer, words", ECHO_BROKEN)
def test_broken_answers_to_the_echo(answer, words):
    sent, verdict = _run([ref.associate_ac(), answer])
    assert verdict is not None and not verdict.up and words in verdict.reason, verdict
    assert sent[-1][0] == d.A_ABORT


def test_an_endless_command_set_is_cut():
    echo = d.CEcho()
    echo.feed(ref.associate_ac())
    fragment = _p_data(b"\x00" * 60000, header=0x01)  # command, not the last fragment
    verdicts = [echo.feed(fragment)[1] for _ in range(20)]
    assert verdicts[-1] is not None and "a command set of over" in verdicts[-1].reason
    assert verdicts.count(None) == 17  # cut at the 18th fragment, past 1 MiB


def test_a_data_set_pdv_before_the_command_is_skipped():
    assert _run([ref.associate_ac(), _p_data(b"\x00" * 8, header=0x02) + ref.echo_rsp(0), ref.release_rp()])[1] == SUCCESS


def test_verdicts_when_the_connection_closes_or_time_runs_out():
    echo = d.CEcho()
    echo.start()
    assert echo.timed_out(2) == Result(False, "TCP accepted but no answer to the association request within 2s")
    echo = d.CEcho()
    echo.start()
    echo.feed(ref.associate_ac()[:20])  # a truncated PDU, then the archive closes
    assert echo.closed() == Result(
        False, "connection closed by the server before the answer to the association request (A-P-ABORT)"
    )
    echo = d.CEcho()
    echo.feed(ref.associate_ac())
    assert echo.timed_out(1.5) == Result(False, "no C-ECHO answer within 1.5s")
    echo = d.CEcho()
    echo.feed(ref.associate_ac())
    assert echo.closed() == Result(False, "connection closed by the server before the C-ECHO answer (A-P-ABORT)")
    echo = d.CEcho()
    echo.feed(ref.associate_ac() + ref.echo_rsp(0))
    assert echo.closed() == SUCCESS  # closed instead of A-RELEASE-RP: the C-ECHO was answered
    echo = d.CEcho()
    echo.feed(ref.associate_ac() + ref.echo_rsp(0))
    assert echo.timed_out(2) == SUCCESS


def test_reason_words():
    assert d.rejection_reason("Rejected Permanent", "Service User", "Called AE title not recognised") == (
        "association rejected (permanent, by the service user): called AE title not recognised"
    )
    assert d.echo_status_reason(0xC001, "out of resources") == Result(False, "C-ECHO status 0xC001: out of resources")
