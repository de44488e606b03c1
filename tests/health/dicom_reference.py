"""pynetdicom as the reference for pacslb's DICOM codec: its PDU and DIMSE classes encode what an
archive sends and decode what the check sends (tests/unit/health/test_dicom_pdu.py, bench/dicom_codec.py).
It lives beside health_peers.py because tests/health is on the tests' import path.."""

from __future__ import annotations

import logging

from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom import pdu, pdu_primitives
from pynetdicom.dimse_messages import C_ECHO_RQ, C_ECHO_RSP
from pynetdicom.dimse_primitives import C_ECHO
from pynetdicom.presentation import PresentationContext

logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)

VERIFICATION = "1.2.840.10008.1.1"


def _user_information(max_pdu: int = 16382) -> list:
    length = pdu_primitives.MaximumLengthNotification()
    length.maximum_length_received = max_pdu
    uid = pdu_primitives.ImplementationClassUIDNotification()
    uid.implementation_class_uid = "1.2.276.0.7230010.3.0.3.6.7"  # dcmtk's, as storescp sends it
    return [length, uid]


def _association(calling: str, called: str, result: int | None = None, context_result: int = 0,
                 transfer_syntax: str = ImplicitVRLittleEndian) -> pdu_primitives.A_ASSOCIATE:  # fmt: skip
    primitive = pdu_primitives.A_ASSOCIATE()
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.calling_ae_title = calling
    primitive.called_ae_title = called
    context = PresentationContext()
    context.context_id = 1
    context.abstract_syntax = VERIFICATION
    context.transfer_syntax = [transfer_syntax]
    if result is not None:
        context.result = context_result
        primitive.result = result
        primitive.presentation_context_definition_results_list = [context]
    else:
        primitive.presentation_context_definition_list = [context]
    primitive.user_information = _user_information()
    return primitive


def associate_rq(calling: str = "PACSLB", called: str = "ARCHIVE") -> bytes:
    """An A-ASSOCIATE-RQ as pynetdicom encodes it (for the codec bench)."""
    out = pdu.A_ASSOCIATE_RQ()
    out.from_primitive(_association(calling, called))
    return out.encode()


def associate_ac(calling: str = "PACSLB", called: str = "ARCHIVE", context_result: int = 0,
                 transfer_syntax: str = ImplicitVRLittleEndian) -> bytes:  # fmt: skip
    out = pdu.A_ASSOCIATE_AC()
    out.from_primitive(_association(calling, called, result=0, context_result=context_result,
                                    transfer_syntax=transfer_syntax))  # fmt: skip
    return out.encode()


def associate_rj(result: int, source: int, diagnostic: int) -> bytes:
    primitive = pdu_primitives.A_ASSOCIATE()
    primitive.result, primitive.result_source, primitive.diagnostic = result, source, diagnostic
    out = pdu.A_ASSOCIATE_RJ()
    out.from_primitive(primitive)
    return out.encode()


def rejection_words(rj: bytes) -> tuple[str, str, str]:
    """(result_str, source_str, reason_str) as pynetdicom words an A-ASSOCIATE-RJ."""
    decoded = pdu.A_ASSOCIATE_RJ()
    decoded.decode(rj)
    primitive = decoded.to_primitive()
    return primitive.result_str, primitive.source_str, primitive.reason_str


def abort(source: int = 0, reason: int = 0) -> bytes:
    primitive = pdu_primitives.A_P_ABORT() if source == 2 else pdu_primitives.A_ABORT()
    if source == 2:
        primitive.provider_reason = reason
    else:
        primitive.abort_source = source
    out = pdu.A_ABORT_RQ()
    out.from_primitive(primitive)
    return out.encode()


def echo_rq(message_id: int = 1, max_pdu: int = 16382) -> bytes:
    """A C-ECHO-RQ in a P-DATA-TF as pynetdicom encodes it (for the codec bench)."""
    primitive = C_ECHO()
    primitive.MessageID = message_id
    primitive.AffectedSOPClassUID = VERIFICATION
    return _p_data(C_ECHO_RQ(), primitive, max_pdu)


def echo_rsp(status: int = 0, message_id: int = 1, max_pdu: int = 16382) -> bytes:
    """A C-ECHO-RSP in P-DATA-TF PDUs (several when max_pdu is small) as pynetdicom encodes it."""
    primitive = C_ECHO()
    primitive.MessageIDBeingRespondedTo = message_id
    primitive.AffectedSOPClassUID = VERIFICATION
    primitive.Status = status
    return _p_data(C_ECHO_RSP(), primitive, max_pdu)


def _p_data(message, primitive, max_pdu: int) -> bytes:
    message.primitive_to_message(primitive)
    wire = b""
    for p_data in message.encode_msg(1, max_pdu):
        out = pdu.P_DATA_TF()
        out.from_primitive(p_data)
        wire += out.encode()
    return wire


def release_rp() -> bytes:
    return pdu.A_RELEASE_RP().encode()


def decode_associate_rq(raw: bytes) -> pdu_primitives.A_ASSOCIATE:
    decoded = pdu.A_ASSOCIATE_RQ()
    decoded.decode(raw)
    return decoded.to_primitive()


def decode_echo_rq(raw: bytes) -> C_ECHO:
    """A P-DATA-TF with a C-ECHO-RQ, through pynetdicom's DIMSE decoder."""
    decoded = pdu.P_DATA_TF()
    decoded.decode(raw)
    message = C_ECHO_RQ()
    assert message.decode_msg(decoded.to_primitive())
    return message.message_to_primitive()


def decode_echo_rsp(raw: bytes) -> C_ECHO:
    decoded = pdu.P_DATA_TF()
    decoded.decode(raw)
    message = C_ECHO_RSP()
    assert message.decode_msg(decoded.to_primitive())
    return message.message_to_primitive()
