"""The `dicom-echo` check: a DICOM association with a C-ECHO (Verification) on it, through pynetdicom.

pynetdicom is blocking (each association runs its own threads), so a probe runs in a bounded thread
pool shared by every dicom-echo check of the appliance (POOL_SIZE threads). The pool bounds the threads, not the checks:
a check waits for a free worker, and its timeout starts when a worker takes it, so a busy pool delays
checks instead of marking real servers down.

Reasons follow the archive's own words: "association rejected (permanent, by the service user):
called AE title not recognised", "association aborted by the server", "C-ECHO status 0x0110".
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pynetdicom import AE, evt
from pynetdicom import _config as _pynetdicom_config
from pynetdicom.sop_class import Verification

from .base import Result, Target

# Threads that run associations at the same moment. pynetdicom spends about 3 to 4 ms of CPU per
# association + C-ECHO + release (PDU and dataset encoding, UID validation, two threads per association
# that poll every millisecond), all under the GIL: one process does a few hundred checks/s whatever the
# pool size, and more threads add polling (bench/health_checks.py at saturation: 4 threads 223/s,
# 8 threads 260/s, 16 threads 200/s). 16 rather than 8: a hanging archive holds a thread for up to twice
# its timeout, and 16 keep healthy archives checked on time while several archives hang.
POOL_SIZE = 16

# pynetdicom logs each rejection and abort at ERROR; the probe's Result carries the reason already,
# and the health-check service logs changes of state only (not one line per failed check).
logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
# Nor do we want its standard handlers, which format a dump of every PDU for the debug log.
_pynetdicom_config.LOG_HANDLER_LEVEL = "none"

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=POOL_SIZE, thread_name_prefix="pacslb-dicom")
        return _pool


def rejection_reason(result: str, source: str, reason: str) -> str:
    """Pure: an A-ASSOCIATE-RJ in words, from pynetdicom's result_str, source_str and reason_str."""
    kind = result.replace("Rejected", "").strip().lower() or "rejected"
    by = source.strip().lower()
    words = " ".join(w if w in ("AE", "DICOM", "ACSE") else w.lower() for w in reason.split())
    return f"association rejected ({kind}, by the {by}): {words}"


def echo_status_reason(status: int) -> Result:
    """Pure: the verdict on a C-ECHO-RSP status (0x0000 Success; PS3.7 C.2.1)."""
    if status == 0x0000:
        return Result(True, "C-ECHO success")
    return Result(False, f"C-ECHO status 0x{status:04X}")


@dataclass
class DicomEchoProbe:
    """Associate as `calling_ae` with `called_ae` and send one C-ECHO, within `timeout` seconds."""

    timeout: float
    calling_ae: str = "PACSLB"
    called_ae: str = "ANY-SCP"
    _ae: AE | None = field(default=None, init=False, repr=False, compare=False)

    def _application_entity(self) -> AE:
        if self._ae is None:
            ae = AE(ae_title=self.calling_ae)
            ae.add_requested_context(Verification)
            ae.connection_timeout = self.timeout
            ae.acse_timeout = self.timeout
            ae.dimse_timeout = self.timeout
            ae.network_timeout = self.timeout
            self._ae = ae
        return self._ae

    def echo(self, target: Target) -> Result:
        """Blocking: one association with one C-ECHO; runs in a worker thread."""
        started = time.monotonic()
        seen: dict[str, object] = {}

        def on_open(event) -> None:
            seen["open"] = True

        def on_acse(event) -> None:
            seen["acse"] = event.primitive

        assoc = self._application_entity().associate(
            target.address,
            target.port,
            ae_title=self.called_ae,
            evt_handlers=[(evt.EVT_CONN_OPEN, on_open), (evt.EVT_ACSE_RECV, on_acse)],
        )
        try:
            if not assoc.is_established:
                return self._not_established(assoc, seen, time.monotonic() - started)
            remaining = self.timeout - (time.monotonic() - started)
            if remaining <= 0:
                return Result(False, f"association accepted but no time left for the C-ECHO ({self.timeout:g}s)")
            assoc.dimse_timeout = remaining
            status = assoc.send_c_echo()
            if "Status" not in status:
                if assoc.is_aborted:
                    return Result(False, "association aborted during the C-ECHO")
                return Result(False, f"no C-ECHO answer within {self.timeout:g}s")
            return echo_status_reason(int(status.Status))
        finally:
            if assoc.is_established:
                assoc.release()

    def _not_established(self, assoc, seen: dict, elapsed: float) -> Result:
        primitive = seen.get("acse")
        name = type(primitive).__name__
        if assoc.is_rejected and primitive is not None and name == "A_ASSOCIATE":
            return Result(False, rejection_reason(primitive.result_str, primitive.source_str, primitive.reason_str))
        if name == "A_ASSOCIATE" and getattr(primitive, "result", None) == 0:
            return Result(False, "association accepted but the Verification SOP class was refused")
        if name == "A_ABORT":
            return Result(False, "association aborted by the server (A-ABORT)")
        if name == "A_P_ABORT" and "open" in seen:
            return Result(False, "association aborted: the connection broke (A-P-ABORT)")
        if "open" not in seen:
            if elapsed >= self.timeout * 0.9:
                return Result(False, f"no answer to connect within {self.timeout:g}s")
            return Result(False, "connect failed: refused or unreachable")
        return Result(False, f"TCP accepted but no answer to the association request within {self.timeout:g}s")

    async def probe(self, target: Target) -> Result:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_executor(), self.echo, target)
