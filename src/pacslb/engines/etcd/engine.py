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
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

from ... import files as atomic
from ...model.config import Config
from ...paths import StatePaths
from ..contract import EngineError, EngineState, Prepared
from ..supervisor import keep_running
from . import process
from .render import render_conf

log = logging.getLogger("pacslb.etcd")


@dataclass
class Work:
    action: str  # start, restart, stop
    conf: str | None = None
    digest: str | None = None
    client: tuple[str, int] | None = None
    previous: str | None = None
    previous_client: tuple[str, int] | None = None
    was_running: bool = False
    swapped: bool = False
    config: Config | None = None  # the configuration the commit makes run
    before: Config | None = None


def _client(config: Config) -> tuple[str, int] | None:
    cluster = config.cluster
    if cluster is None or not cluster.this_node.etcd_member:
        return None
    return str(cluster.this_node.address), cluster.etcd.client_port


class EtcdEngine:
    name = "etcd"

    def __init__(self, paths: StatePaths, gate: asyncio.Lock, binary: str = process.DEFAULT_BINARY) -> None:
        self.files = process.Files(paths.etcd_dir)
        self.gate = gate
        self.binary = binary
        self.pid: int | None = None
        self.restarts = 0
        self.error: str | None = None
        self.config: Config | None = None
        self._stopping = asyncio.Event()

    def wanted(self, config: Config) -> bool:
        return _client(config) is not None

    def _render(self, config: Config) -> str:
        assert config.cluster is not None
        return render_conf(config.cluster, PurePosixPath(self.files.data))

    def _running(self) -> bool:
        return self.pid is not None and process.alive(self.pid)

    def applied_digest(self) -> str | None:
        text = atomic.read_text(self.files.config)
        return atomic.sha256(text) if text is not None and self._running() else None

    def plan(self, old: Config, new: Config, base_dir: Path) -> Prepared:
        if not self.wanted(new):
            if not self._running():
                return Prepared(self.name, False)
            return Prepared(self.name, True, None, ["etcd: this node is no longer an etcd member: etcd stopped "
                                                    "(its data directory stays)"], data=Work("stop", config=new))  # fmt: skip
        conf = self._render(new)
        digest = atomic.sha256(conf)
        running = self._running()
        if running and digest == self.applied_digest():
            self.config = new
            return Prepared(self.name, False, digest)
        action = "restart" if running else "start"
        steps = [f"etcd: etcd.conf.yml {'replaced, etcd restarted' if running else 'written, etcd started'}"]
        warnings = []
        if running and old.cluster is not None and new.cluster is not None:
            if [n.name for n in old.cluster.etcd_members] != [n.name for n in new.cluster.etcd_members]:
                warnings.append("etcd reads initial-cluster only when it bootstraps: add or remove a member of a running "
                                "cluster with `etcdctl member add/remove` (docs/cluster.md)")  # fmt: skip
        return Prepared(self.name, True, digest, steps, warnings, data=Work(action, conf, digest, _client(new), config=new))

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

    async def commit(self, prepared: Prepared) -> None:
        await asyncio.to_thread(self._commit, prepared.data)

    def _commit(self, work: Work) -> None:
        work.previous = atomic.read_text(self.files.config)
        work.previous_client = _client(self.config) if self.config is not None else None
        work.was_running = self._running()
        work.swapped = True
        work.before, self.config = self.config, work.config
        if work.action == "stop":
            self._stop_now()
            return
        assert work.conf is not None and work.client is not None
        self._write(work.conf)
        try:
            self._stop_now()
            self.pid = process.start(self.files, work.client, self.binary)
            log.info("etcd member started (PID %d) on %s:%d", self.pid, *work.client)
        except (process.EtcdProcessError, OSError) as exc:
            raise EngineError(f"etcd could not {work.action}", [str(exc)]) from None

    def _write(self, conf: str) -> None:
        self.files.dir.mkdir(parents=True, exist_ok=True)
        self.files.dir.chmod(0o700)
        atomic.atomic_write(self.files.config, conf)

    def _stop_now(self) -> None:
        if self.pid is not None:
            process.stop(self.pid)
            log.info("etcd member stopped (PID %d)", self.pid)
            self.pid = None

    async def undo(self, prepared: Prepared) -> None:
        work: Work = prepared.data
        if work.swapped:
            await asyncio.to_thread(self._undo, work)

    def _undo(self, work: Work) -> None:
        self.config = work.before
        if work.previous is None or not work.was_running or work.previous_client is None:
            self._stop_now()
            return
        self._write(work.previous)
        try:
            self._stop_now()
            self.pid = process.start(self.files, work.previous_client, self.binary)
        except (process.EtcdProcessError, OSError) as exc:
            raise EngineError("etcd could not be started again on its previous file", [str(exc)]) from None

    def discard(self, prepared: Prepared) -> None:
        return None  # nothing is written before the commit

    async def start(self, config: Config, base_dir: Path) -> None:
        self.config = config
        if not self.wanted(config):
            return
        try:
            await asyncio.to_thread(self._start, config)
        except (process.EtcdProcessError, OSError) as exc:
            raise EngineError("etcd could not be started", [str(exc)]) from None

    def _start(self, config: Config) -> None:
        conf = self._render(config)
        client = _client(config)
        assert client is not None
        running = process.adopt(self.files)
        same = atomic.read_text(self.files.config) == conf
        self._write(conf)
        if running is not None and same:
            self.pid = running
            log.info("adopted the etcd member (PID %d)", running)
            return
        if running is not None:
            process.stop(running)
        self.pid = process.start(self.files, client, self.binary)
        log.info("etcd member started (PID %d) on %s:%d", self.pid, *client)

    async def supervise(self) -> None:
        await keep_running(self, "etcd", self._stopping, (EngineError, process.EtcdProcessError, OSError), log)

    # what engines/supervisor.py asks of it
    def should_run(self) -> bool:
        return self.config is not None and self.wanted(self.config) and self.pid is not None

    def is_running(self) -> bool:
        return self._running()

    async def start_again(self) -> None:
        assert self.config is not None
        await asyncio.to_thread(self._start, self.config)

    async def stop(self) -> None:
        self._stopping.set()
        await asyncio.to_thread(self._stop_now)

    def observe(self) -> EngineState:
        detail = {}
        client = _client(self.config) if self.config is not None else None
        if client is not None:
            detail["client"] = f"{client[0]}:{client[1]}"
        return EngineState(self.name, self._running(), self.pid, self.restarts, self.error, detail)

    def orphans(self) -> list[str]:
        found = process.adopt(self.files)
        return [f"etcd PID {found}"] if found is not None and found != self.pid else []
