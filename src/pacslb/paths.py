"""Where things live in the state directory. One place, so the controller, CLI and tests agree."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StatePaths:
    """Files and sockets of one appliance, all under its state directory."""

    root: Path

    @property
    def haproxy_dir(self) -> Path:
        return self.root / "haproxy"

    @property
    def haproxy_config(self) -> Path:
        """The rendered HAProxy configuration that runs (written atomically)."""
        return self.haproxy_dir / "haproxy.cfg"

    @property
    def haproxy_admin_socket(self) -> Path:
        """HAProxy's stats socket at level admin (the runtime API)."""
        return self.haproxy_dir / "admin.sock"

    @property
    def haproxy_master_socket(self) -> Path:
        """The master CLI of HAProxy's master-worker mode (reload, show proc)."""
        return self.haproxy_dir / "master.sock"

    @property
    def haproxy_server_state(self) -> Path:
        """server-state-file: real-server states and weights kept across reloads."""
        return self.haproxy_dir / "server-state"

    @property
    def haproxy_pid(self) -> Path:
        """PID of HAProxy's master process."""
        return self.haproxy_dir / "haproxy.pid"

    @property
    def haproxy_log(self) -> Path:
        return self.haproxy_dir / "haproxy.log"

    @property
    def haproxy_applied(self) -> Path:
        """SHA-256 of the configuration HAProxy's master last loaded; a restarted controller compares it to adopt."""
        return self.haproxy_dir / "haproxy.cfg.sha256"

    @property
    def controller_socket(self) -> Path:
        """The controller API (HTTP over a Unix socket), used by `pacslb status` and friends."""
        return self.root / "controller.sock"

    @property
    def controller_lock(self) -> Path:
        """Held (flock) by the running controller: a second `pacslb up` on this directory refuses."""
        return self.root / "controller.lock"

    @property
    def controller_pid(self) -> Path:
        return self.root / "controller.pid"

    @property
    def config(self) -> Path:
        """The configuration the appliance runs (a copy of the applied file)."""
        return self.root / "pacslb.yaml"

    @property
    def revisions_db(self) -> Path:
        """SQLite store of revisions: every configuration applied (or attempted), with author, time and message."""
        return self.root / "revisions.sqlite"

    @property
    def certs_dir(self) -> Path:
        return self.root / "certs"

    @property
    def audit_log(self) -> Path:
        """Every change (CLI, API, WebUI) and every login attempt (SQLite, mode 0600; store/audit.py)."""
        return self.root / "audit.sqlite"
