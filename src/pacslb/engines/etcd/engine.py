"""This node's member of the cluster's etcd as an engine of the appliance (engines/contract.py; issue 20).

Wanted when the configuration has a `cluster` section and this node is one of its `etcd_member`s. It comes first
in the engines' order: the cluster's state (cluster/state.py) reads etcd once the engines run, and on the way down
the member stops last.

  start      render etcd.conf.yml; adopt the etcd that already runs this state directory's member (restarted when
             its file differs), or start one; it does not wait for quorum (the other members may start later)
  supervise  a dead member is started again (growing pause between attempts that fail)
  plan       etcd.conf.yml; changed when it differs from what runs (a new address or port: a restart)
  check      the file is etcd's YAML and names this member in initial-cluster
  commit     the file swapped in, etcd started or restarted (its data directory stays: the member keeps its data)
  undo       the previous file back and etcd restarted on it (or stopped when the commit started it)

The data directory is never removed by pacslb (`stop` leaves it): it is the cluster's state on this member.
Started on an empty data directory while the other members still count this member (the data lost), etcd exits
("has already been bootstrapped"): the engine then says so (`needs_rejoin`, its error), the controller starts
without the member, and changes do not try to start it again until `pacslb cluster rejoin`.

A rejoin (`pacslb cluster rejoin`, cluster/members.py; the member's data directory lost or corrupt) drives the
member outside a change, under the appliance's gate: `stop_member`, then (once etcd has the member again)
`start_existing` moves the old data directory aside (`data.lost-<time>`, kept), writes the marker file
`<state>/etcd/rejoin` and starts the member on an empty data directory; the file says `initial-cluster-state:
existing` while the marker is there (every render reads it: plan, start, supervision). `joined` removes the marker
once the member has caught up and writes the file with `new` again, without a restart: etcd reads the state only on
an empty data directory, so what runs is the same.
With `cluster.etcd.tls` the file names the node's certificate, key and the cluster CA (absolute paths, relative ones
from the configuration file's folder): a member started on https, asking every client and peer for a certificate.

Commit, undo, the applied digest (`etcd/applied.sha256`), start/adopt and supervision are the shared ones of
engines/rendered_daemon.py; etcd reads its file only when it starts, so every commit (and undo) restarts it.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import ClassVar

import yaml

from ... import files as atomic
from ...model.config import Config
from ...paths import StatePaths
from ..contract import EngineError, EngineState, Prepared
from ..rendered_daemon import DaemonWork, RenderedDaemonEngine
from . import process
from .render import render_conf

log = logging.getLogger("pacslb.etcd")

# etcd's answer at the start of a member whose data directory is empty while the other members still count it
LOST_DATA = "has already been bootstrapped"
NEEDS_REJOIN = ("etcd: this node's etcd data directory is empty and the cluster still counts its member (etcd: "
                f"{LOST_DATA!r}): its member does not run; run `pacslb cluster rejoin` on this node (docs/cluster.md)")  # fmt: skip


@dataclass
class Work(DaemonWork):
    # action: start, restart, stop; previous (the commit's snapshot): etcd.conf.yml and the client address it
    # listens on; config: the configuration the commit makes run
    conf: str | None = None


def _client(config: Config | None) -> tuple[str, int] | None:
    cluster = config.cluster if config is not None else None
    if cluster is None or not cluster.this_node.etcd_member:
        return None
    return str(cluster.this_node.address), cluster.etcd.client_port


class EtcdEngine(RenderedDaemonEngine):
    """The shared transaction (engines/rendered_daemon.py) over etcd.conf.yml. etcd has no reload: every change
    of the file restarts the member (on the same data directory), and undo restarts it on the previous file."""

    name = "etcd"
    label = "etcd"
    reload_action = "reload"  # never planned: etcd reads its file only when it starts
    failures: ClassVar[tuple[type[BaseException], ...]] = (process.EtcdProcessError,)
    log = log
    process = process
    undo_reloads_only_after_reload = True  # no commit reloads: undo restarts

    def __init__(self, paths: StatePaths, gate: asyncio.Lock, binary: str = process.DEFAULT_BINARY) -> None:
        super().__init__(gate)
        self.files = process.Files(paths.etcd_dir)
        self.binary = binary
        self.base_dir: Path | None = None  # the configuration file's folder: relative cluster.etcd.tls paths start there
        self.needs_rejoin = False  # started on a lost data directory: waits for `pacslb cluster rejoin` (start)

    def wanted(self, config: Config) -> bool:
        return _client(config) is not None

    def _render(self, config: Config) -> str:
        assert config.cluster is not None
        state = "existing" if self.files.rejoin.exists() else "new"  # the marker of a rejoin (module docstring)
        return render_conf(config.cluster, PurePosixPath(self.files.data), self.base_dir, state)

    # --- the files and the daemon ------------------------------------------------------------------------

    def _read_files(self) -> tuple[str | None, tuple[str, int] | None]:
        # read before the commit takes the new configuration: the client address the previous file serves
        return atomic.read_text(self.files.config), _client(self.config)

    def _restorable(self, previous: tuple[str | None, tuple[str, int] | None]) -> bool:
        return previous[0] is not None and previous[1] is not None

    def _write(self, conf: str) -> None:
        self.files.dir.mkdir(parents=True, exist_ok=True)
        self.files.dir.chmod(0o700)
        atomic.atomic_write(self.files.config, conf)

    def _write_new(self, work: DaemonWork) -> None:
        assert isinstance(work, Work) and work.conf is not None
        self._write(work.conf)

    def _write_back(self, previous: tuple[str | None, tuple[str, int] | None]) -> None:
        assert previous[0] is not None
        self._write(previous[0])

    def _reload(self) -> None:
        """Nothing to read again: an adopted member runs this very file (a different one is a restart)."""

    def _start_daemon(self) -> int:
        """Start the member of the configuration in force (the commit's, or undo's previous one) on its client
        address; its PID once that port accepts connections."""
        client = _client(self.config)
        assert client is not None
        return process.start(self.files, client, self.binary)

    # --- plan, check, start ------------------------------------------------------------------------------

    async def start(self, config: Config, base_dir: Path) -> None:
        self.base_dir = base_dir
        empty = not process.has_data(self.files)
        try:
            await super().start(config, base_dir)
        except EngineError as exc:
            if not (empty and any(LOST_DATA in m for m in exc.messages)):
                raise
            self._wait_for_rejoin(config)

    async def start_again(self) -> None:
        """Supervision's start of a dead member; one that etcd refuses as lost waits for the rejoin (see start)."""
        empty = not process.has_data(self.files)
        try:
            await super().start_again()
        except process.EtcdProcessError as exc:
            if not (empty and LOST_DATA in str(exc)) or self.config is None:
                raise
            self._wait_for_rejoin(self.config)

    def _wait_for_rejoin(self, config: Config) -> None:
        """This node's data directory was lost, and the other members still count it: etcd refuses to start it as a
        new member. The controller runs without it (its cluster state reaches the other members) and the operator
        rejoins it (`pacslb cluster rejoin`); neither supervision nor a change tries to start it again meanwhile."""
        self.needs_rejoin, self.pid = True, None
        self.error = NEEDS_REJOIN
        atomic.atomic_write(self.files.applied, atomic.sha256(self._render(config)) + "\n")
        log.error("%s", NEEDS_REJOIN)

    def plan(self, old: Config, new: Config, base_dir: Path) -> Prepared:
        self.base_dir = base_dir  # the same folder unless the configuration file moved (then the next start renders it)
        if not self.wanted(new):
            if not self._running():
                return Prepared(self.name, False)
            return Prepared(self.name, True, None, ["etcd: this node is no longer an etcd member: etcd stopped "
                                                    "(its data directory stays)"], data=Work("stop", config=new))  # fmt: skip
        conf = self._render(new)
        digest = atomic.sha256(conf)
        running = self._running()
        if (running or self.needs_rejoin) and digest == self.applied_digest():  # waiting for a rejoin: not started
            self.config = new
            return Prepared(self.name, False, digest)
        action = "restart" if running else "start"
        steps = [f"etcd: etcd.conf.yml {'replaced, etcd restarted' if running else 'written, etcd started'}"]
        warnings = []
        if running and old.cluster is not None and new.cluster is not None:
            if [n.name for n in old.cluster.etcd_members] != [n.name for n in new.cluster.etcd_members]:
                warnings.append("etcd reads initial-cluster only when it bootstraps: add or remove a member of a running "
                                "cluster with `etcdctl member add/remove` (docs/cluster.md)")  # fmt: skip
        return Prepared(self.name, True, digest, steps, warnings, data=Work(action, digest, config=new, conf=conf))

    async def check(self, prepared: Prepared) -> None:
        work: Work = prepared.data
        if work.conf is None:
            return
        try:
            parsed = yaml.safe_load(work.conf)
        except yaml.YAMLError as exc:
            raise EngineError("the rendered etcd.conf.yml is not YAML", [str(exc)], refused=True) from None
        if f"{parsed.get('name')}=" not in str(parsed.get("initial-cluster")):
            raise EngineError("etcd.conf.yml does not name this member in initial-cluster", refused=True)
        work.checked = True

    def _start(self, config: Config) -> None:
        conf, client = self._render(config), _client(config)
        assert client is not None
        running = process.adopt(self.files)
        same = atomic.read_text(self.files.config) == conf
        self._write(conf)
        if self._serve(running, same, atomic.sha256(conf)):  # a different file takes a restart
            log.info("adopted the etcd member (PID %d)", running)
        else:
            log.info("etcd member started (PID %d) on %s:%d", self.pid, *client)

    # --- a rejoin (cluster/members.py): the caller holds the appliance's gate -----------------------------

    async def stop_member(self) -> None:
        """Stop the member (a rejoin replaces its data); supervision leaves it stopped until `start_existing`."""
        async with self._data:
            await asyncio.to_thread(self._stop_now)

    async def start_again_on_its_data(self) -> None:
        """Start the member again on its data directory as it is (a rejoin that changed nothing)."""
        assert self.config is not None
        async with self._data:
            await asyncio.to_thread(self._start, self.config)

    async def start_existing(self) -> Path | None:
        """Start the member on an empty data directory with `initial-cluster-state: existing`, the old one moved
        aside (kept: where it went, or None when there was none)."""
        assert self.config is not None and self.wanted(self.config)
        async with self._data:
            return await asyncio.to_thread(self._start_existing, self.config)

    def _start_existing(self, config: Config) -> Path | None:
        self.needs_rejoin, self.error = False, None
        kept = None
        data = self.files.data
        if process.has_data(self.files):  # a corrupt member's data: kept aside for a look, never removed by pacslb
            kept = data.with_name(f"data.lost-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
            data.rename(kept)
        elif data.exists():
            shutil.rmtree(data)  # no write-ahead log: nothing etcd counts as data (what a refused start left)
        self.files.dir.mkdir(parents=True, exist_ok=True)
        atomic.atomic_write(self.files.rejoin, "initial-cluster-state: existing (pacslb cluster rejoin)\n")
        self._start(config)
        return kept

    async def joined(self) -> None:
        """The member caught up: the marker goes and the file says `new` again; etcd keeps running (it reads the
        state only on an empty data directory)."""
        async with self._data:
            await asyncio.to_thread(self._joined)

    def _joined(self) -> None:
        self.files.rejoin.unlink(missing_ok=True)
        if self.config is None or not self.wanted(self.config):
            return
        conf = self._render(self.config)
        self._write(conf)
        atomic.atomic_write(self.files.applied, atomic.sha256(conf) + "\n")

    def observe(self) -> EngineState:
        detail = {}
        client = _client(self.config)
        if client is not None:
            detail["client"] = f"{client[0]}:{client[1]}"
        if self.needs_rejoin:
            detail["needs_rejoin"] = True  # its data directory was lost: `pacslb cluster rejoin`
        if self.files.rejoin.exists():
            detail["rejoining"] = True  # started with initial-cluster-state: existing, not caught up yet
        error = NEEDS_REJOIN if self.needs_rejoin else self.error  # supervision clears `error` after its start
        return EngineState(self.name, self._running(), self.pid, self.restarts, error, detail)
