"""Simulated True PACS services: HTTP/HTTPS and AMQP backends with replicas, on loopback.

- :mod:`.spec`     the spec (dataclasses, JSON) and :func:`demo_spec_for` (address scheme)
- :mod:`.http11`   a small HTTP/1.1 parser (pure)
- :mod:`.amqp`     AMQP 0-9-1 frame encoding and the handshake state machine (pure)
- :mod:`.server`   the asyncio runtime (replicas, control endpoint)
- :mod:`.services` the command line ``python -m pacslb.demo.services --spec FILE``
- :mod:`.control`  the control client and :class:`DemoProcess` (start/stop the child)
"""

from .control import DemoControl, DemoError, DemoProcess
from .spec import (
    DemoSpec,
    ReplicaSpec,
    ServiceSpec,
    SpecError,
    TlsSpec,
    demo_spec_for,
    load_spec,
    replica_address,
    spec_from_json,
)

__all__ = [
    "DemoControl",
    "DemoError",
    "DemoProcess",
    "DemoSpec",
    "ReplicaSpec",
    "ServiceSpec",
    "SpecError",
    "TlsSpec",
    "demo_spec_for",
    "load_spec",
    "replica_address",
    "spec_from_json",
]
