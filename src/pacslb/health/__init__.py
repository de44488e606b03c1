"""Health checks run by the appliance itself (Layer 4 real servers now; the PACS-aware checks join here).

    probe = probe_for(vs.health_check)             # ConnectProbe | HTTPProbe | None ('none')
    result = await probe.probe(Target(address, port))  # Result(up, reason)

`Checker` runs one loop per real server, applies rise/fall, and calls back on every change of state.
"""

from .probes import ConnectProbe, HTTPProbe, Probe, Result, Target, probe_for
from .runner import Checker, Watch

__all__ = ["Checker", "ConnectProbe", "HTTPProbe", "Probe", "Result", "Target", "Watch", "probe_for"]
