"""The WAF tier's files: its configuration, PID, logs and audit logs under <state>/waf/, and a run directory
the Apache workers (www-data) can reach for the return sockets into HAProxy and ModSecurity's temporary files.

The state directory is 0750 root (statedir.py), so the workers, which drop to www-data, cannot reach anything
under it; the run directory is /run/pacslb-waf/<digest of the state directory> (0750 root:www-data), one per
appliance, so that two appliances on one host (tests) never share it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

RUN_ROOT = Path("/run/pacslb-waf")


@dataclass(frozen=True)
class WafPaths:
    root: Path  # the state directory

    @property
    def dir(self) -> Path:
        return self.root / "waf"

    @property
    def config(self) -> Path:
        return self.dir / "apache.conf"

    @property
    def pid(self) -> Path:
        return self.dir / "apache.pid"

    @property
    def error_log(self) -> Path:
        return self.dir / "error.log"

    @property
    def runtime(self) -> Path:
        """Apache's own runtime files (mutexes, scoreboard), made by the root parent."""
        return self.dir / "runtime"

    def audit_log(self, policy: str) -> Path:
        """ModSecurity's audit log of one policy (JSON, one request a line): the events of that policy."""
        return self.dir / f"audit-{policy}.log"

    @property
    def run(self) -> Path:
        digest = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:16]
        return RUN_ROOT / digest

    @property
    def tmp(self) -> Path:
        """ModSecurity's SecTmpDir and SecDataDir: request bodies above the in-memory limit (www-data, 0700)."""
        return self.run / "tmp"

    def return_socket(self, service: str) -> Path:
        """Where HAProxy takes back the requests of `service` that the WAF passed."""
        return self.run / f"return-{service}.sock"
