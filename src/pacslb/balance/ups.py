"""Optional: each assignment as a DICOM UPS workitem (Unified Procedure Step, PS3.4 CC), pushed by N-CREATE to a
worklist manager, with the reader as its Scheduled Human Performer.

The workitem is built by a pure function; delivery goes through an outbox in the store (written in the same
transaction as the assignment), so a workitem is pushed at least once even across a restart. The SOP Instance UID is
derived from the accession and the time of the assignment, so a push sent again names the same workitem. Needs
pynetdicom (`pip install pacslb[balance]`); without it a configured `ups` section is refused at start.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from .model import Assignment, Exam

UPS_PUSH = "1.2.840.10008.5.1.4.34.6.1"
PRIORITY = {"STAT": "HIGH", "expedited": "MEDIUM"}  # anything else: LOW (routine)


@dataclass(frozen=True)
class Workitem:
    """What one N-CREATE carries (plain data; `dataset` turns it into DICOM)."""

    sop_instance_uid: str
    accession: str
    patient: str
    reader: str
    priority: str
    label: str
    scheduled: str  # DICOM DT
    comments: str


def workitem(exam: Exam, assignment: Assignment) -> Workitem:
    """The workitem of an assignment (pure)."""
    digest = hashlib.sha256(f"{assignment.accession}\0{assignment.at!r}".encode()).digest()
    uid = "2.25." + str(int.from_bytes(digest[:16], "big"))  # a UUID-derived UID (PS3.5 B.2), stable per assignment
    when = dt.datetime.fromtimestamp(assignment.at, dt.timezone.utc).strftime("%Y%m%d%H%M%S+0000")
    return Workitem(
        uid,
        exam.accession,
        exam.patient,
        assignment.reader,
        PRIORITY.get(exam.priority, "LOW"),
        f"Read {exam.modality} {exam.body_part}".strip()[:64],
        when,
        assignment.reason[:10240],
    )


def dataset(item: Workitem):
    """The N-CREATE attribute list of a workitem (SCHEDULED, READY, the reader as Scheduled Human Performer)."""
    from pydicom.dataset import Dataset

    performer_code = Dataset()
    performer_code.CodeValue = item.reader[:16]
    performer_code.CodingSchemeDesignator = "PACSLB"
    performer_code.CodeMeaning = item.reader[:64]
    performer = Dataset()
    performer.HumanPerformerCodeSequence = [performer_code]
    performer.HumanPerformerName = item.reader[:64]
    request = Dataset()
    request.AccessionNumber = item.accession[:16]
    request.RequestedProcedureID = item.accession[:16]
    ds = Dataset()
    ds.TransactionUID = ""
    ds.ProcedureStepState = "SCHEDULED"
    ds.ScheduledProcedureStepPriority = item.priority
    ds.ProcedureStepLabel = item.label
    ds.WorklistLabel = "pacslb balance"
    ds.InputReadinessState = "READY"
    ds.ScheduledProcedureStepStartDateTime = item.scheduled
    ds.ScheduledHumanPerformersSequence = [performer]
    ds.ReferencedRequestSequence = [request]
    ds.PatientID = item.patient[:64]
    ds.CommentsOnTheScheduledProcedureStep = item.comments
    return ds


def push(item: Workitem, host: str, port: int, called: str, calling: str, timeout: float) -> str:
    """N-CREATE one workitem (blocking; the service runs it in a thread). '' when the SCP accepted it, else why not."""
    from pynetdicom import AE

    ae = AE(ae_title=calling)
    ae.add_requested_context(UPS_PUSH)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    assoc = ae.associate(host, port, ae_title=called)
    if not assoc.is_established:
        return f"no association with {called} at {host}:{port}"
    try:
        status, _ = assoc.send_n_create(dataset(item), UPS_PUSH, item.sop_instance_uid)
    finally:
        assoc.release()
    code = getattr(status, "Status", None)
    if code is None:
        return "no N-CREATE answer"
    if code in (0x0000, 0xB300):  # success; or "created with modifications"
        return ""
    return f"N-CREATE status 0x{code:04X}"
