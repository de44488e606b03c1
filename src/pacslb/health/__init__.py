"""Health checks run by the appliance itself (connect, HTTP(S), dicom-echo, hl7, amqp, external).

    probe = probe_for(vs.health_check, CheckContext(vip, vip_port))  # a probe, or None for 'none'
    result = await probe.probe(Target(address, port))  # Result(up, reason)

`Checker` runs one loop per real server, applies rise/fall, and calls back on every change of state.
"""

from .probes import (
    AMQPProbe,
    CheckContext,
    ConnectProbe,
    DicomEchoProbe,
    ExternalProbe,
    HL7Probe,
    HTTPProbe,
    Probe,
    Result,
    Target,
    probe_for,
)
from .runner import Checker, Watch

__all__ = [
    "AMQPProbe", "CheckContext", "Checker", "ConnectProbe", "DicomEchoProbe", "ExternalProbe", "HL7Probe",
    "HTTPProbe", "Probe", "Result", "Target", "Watch", "probe_for",
]  # fmt: skip
