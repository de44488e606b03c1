"""Where things live in the state directory. One place, so the controller, engines, CLI and tests agree: every
file and folder the appliance writes under the state directory is named here (keepalived's folder holds files
that engines/keepalived/render.py `KeepalivedPaths` names, because its renderer writes them into the config)."""

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
    def haproxy_chroot(self) -> Path:
        """The empty, root-owned directory (mode 0755) HAProxy's workers are chrooted to; made before HAProxy starts."""
        return self.haproxy_dir / "chroot"

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
    def secrets_db(self) -> Path:
        """The secrets of each revision (the AMQP check's password), kept out of revisions.sqlite (SQLite, mode
        0600; store/secrets.py)."""
        return self.root / "secrets.sqlite"

    @property
    def certs_dir(self) -> Path:
        """Certificates uploaded through the management API: the one folder of the state directory whose files a
        configuration may name, and only as certificates (model/files.py `Reserved`)."""
        return self.root / "certs"

    @property
    def audit_log(self) -> Path:
        """Every change (CLI, API, WebUI) and every login attempt (SQLite, mode 0600; store/audit.py)."""
        return self.root / "audit.sqlite"

    @property
    def haproxy_prometheus_socket(self) -> Path:
        """HAProxy's Prometheus exporter frontend (for the management API's /metrics)."""
        return self.haproxy_dir / "prom.sock"

    @property
    def nftables_dir(self) -> Path:
        return self.root / "nftables"

    @property
    def nftables_ruleset(self) -> Path:
        """The Layer 4 ruleset that runs (pacslb's nftables tables), as applied."""
        return self.nftables_dir / "ruleset.nft"

    @property
    def nftables_applied(self) -> Path:
        """SHA-256 of the ruleset that runs: a restarted controller adopts tables that run exactly it."""
        return self.nftables_dir / "ruleset.sha256"

    @property
    def keepalived_dir(self) -> Path:
        """keepalived.conf, its PID files, log, notify and check scripts, VRRP events, split-brain bonus."""
        return self.root / "keepalived"

    @property
    def powerdns_dir(self) -> Path:
        """PowerDNS (GSLB): pdns.conf, zones.yaml, its PID file, control socket and log; pdns_server's chroot."""
        return self.root / "powerdns"

    @property
    def bird_dir(self) -> Path:
        """BIRD (cluster routing): bird.conf, the announced VIPs' route files, its PID file, control socket and log."""
        return self.root / "bird"

    @property
    def etcd_dir(self) -> Path:
        """The cluster's etcd member (issue 20): etcd.conf.yml, its data directory data/, PID file and log."""
        return self.root / "etcd"

    @property
    def cluster_dir(self) -> Path:
        """The cluster's state on this node: applied.json (the cluster revision it runs), drained."""
        return self.root / "cluster"

    @property
    def cluster_drained(self) -> Path:
        """Present while this cluster node is drained (it announces no VIP); kept across controller restarts."""
        return self.cluster_dir / "drained"

    @property
    def ha_dir(self) -> Path:
        return self.root / "ha"

    @property
    def ha_promoted(self) -> Path:
        """Present while this secondary is promoted (`pacslb ha promote`)."""
        return self.ha_dir / "promoted"

    @property
    def ha_synced(self) -> Path:
        """The last configuration taken from the primary: its revision there and here (JSON)."""
        return self.ha_dir / "synced.json"

    @property
    def ha_node_certificate(self) -> Path:
        """This node's peer-link certificate (self-signed; the peer pins it)."""
        return self.ha_dir / "node.pem"

    @property
    def ha_node_key(self) -> Path:
        return self.ha_dir / "node.key"

    @property
    def users_db(self) -> Path:
        """Users, sessions and API keys of the management API (SQLite, mode 0600)."""
        return self.root / "users.sqlite"

    @property
    def metrics_db(self) -> Path:
        """24 hours of metrics samples for the WebUI's graphs (SQLite)."""
        return self.root / "metrics.sqlite"

    @property
    def initial_admin_password(self) -> Path:
        """The first admin's one-time password (mode 0600), until it is changed."""
        return self.root / "initial-admin-password"

    @property
    def management_dir(self) -> Path:
        return self.root / "management"

    @property
    def management_certificate(self) -> Path:
        """The management API's self-signed certificate, made at first start unless one is configured."""
        return self.management_dir / "server.pem"

    @property
    def management_url(self) -> Path:
        """The address the management API listens on (for `pacslb demo` and scripts)."""
        return self.root / "management-url"

    @property
    def controller_log(self) -> Path:
        """The controller's log (rotated at 10 MB, 5 kept); the management API serves its tail."""
        return self.root / "controller.log"
