"""TPROXY's host side as an engine of the appliance (engines/contract.py): what `transparent: true` needs from the kernel.

Wanted while some Layer 7 service is transparent (render.py says what: a mark set by nftables on the replies to
HAProxy's transparent connections, a policy rule for that mark and a routing table where every address is local,
per address family). It comes before HAProxy, so that the replies to HAProxy's first transparent connections
already find their way, and leaves after it.

  start      adopt: what this state directory installed before (its record) is taken as its own; what is
             missing is added, what is no longer wanted is removed
  plan       the wanted mark, table and families (pure); changed when they differ from what runs
  check      `nft -c` of the table
  commit     add what is missing (route, rule, then the nftables table), remove what is no longer wanted
  undo       converge back to what ran before
  stop       remove everything it installed (a hand-over for an upgrade leaves it, as every engine)

A rule or route that was already there (made by hand, say) is used and never removed; the record,
`<state>/tproxy/installed.json`, says which ones pacslb added. The nftables table `inet pacslb_tproxy` is
pacslb's by its name.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from ... import files
from ...model.config import Config
from ...paths import StatePaths
from ..contract import EngineError, EngineState, Prepared
from . import process
from .render import TABLE_NAME, Wanted, wanted

log = logging.getLogger("pacslb.tproxy")


@dataclass
class Record:
    """What runs: the wanted mark, table and families, and which of their items this appliance added."""

    running: Wanted = field(default_factory=Wanted)
    added: list[str] = field(default_factory=list)


@dataclass
class Work:
    target: Wanted
    previous: Wanted | None = None


class TproxyEngine:
    name = "tproxy"

    def __init__(self, paths: StatePaths) -> None:
        self.dir = paths.root / "tproxy"
        self.record_file = self.dir / "installed.json"
        self.record = self._read()
        self.error: str | None = None
        self._stopping = asyncio.Event()

    def wanted(self, config: Config) -> bool:
        return not wanted(config).empty or bool(self.record.added)

    # --- the record ----------------------------------------------------------------------------------

    def _read(self) -> Record:
        def parse(data: dict) -> Record:
            running = Wanted(int(data["mark"]), int(data["table"]), tuple(int(f) for f in data["families"]))
            return Record(running, [str(a) for a in data.get("added", [])])

        return files.read_record(self.record_file, parse, Record(), log, "the rules and routes it named are left alone")

    def _write(self, record: Record) -> None:
        r = record.running
        files.write_record(
            self.record_file, {"mark": r.mark, "table": r.table, "families": list(r.families), "added": record.added}
        )
        self.record = record

    # --- the work ------------------------------------------------------------------------------------

    def _present(self, item: str, w: Wanted) -> bool:
        if item == "nftables":
            return process.nft_present()
        family = int(item[-1])
        if item.startswith("rule"):
            return process.rule_present(family, w.mark, w.table)
        return process.route_present(family, w.table)

    def _add(self, item: str, w: Wanted) -> None:
        if item == "nftables":
            process.nft_apply(w.ruleset())  # replaces the table whole: a new mark takes effect at once
            return
        family = int(item[-1])
        if item.startswith("rule"):
            process.rule_add(family, w.mark, w.table)
        else:
            process.route_add(family, w.table)

    def _remove(self, item: str, w: Wanted) -> None:
        if item == "nftables":
            process.nft_delete()
            return
        family = int(item[-1])
        if item.startswith("rule"):
            process.rule_del(family, w.mark, w.table)
        else:
            process.route_del(family, w.table)

    def _converge(self, target: Wanted) -> None:
        """Make the kernel hold `target`: remove what this appliance added that `target` does not want (with the
        mark and table it was added with), then add what is missing. Recorded after every step, so that a failure
        half-way leaves a record of what is really there."""
        current = self.record.running
        added = list(self.record.added)
        moved = (current.mark, current.table) != (target.mark, target.table)
        for item in reversed(current.items()):
            if item not in added or (item in target.items() and not moved):
                continue
            if item == "nftables" and not target.empty:
                continue  # replaced in one transaction below, never left out in between
            try:
                self._remove(item, current)
            except process.KernelError as exc:
                if self._present(item, current):
                    raise EngineError(f"TPROXY: {item} (mark {current.mark:#x}, table {current.table}) cannot be removed",
                                      [str(exc)]) from None  # fmt: skip
            added.remove(item)
            self._write(Record(current, added))
            log.info("TPROXY: removed %s (mark %#x, table %d)", item, current.mark, current.table)
        for item in target.items():
            if item != "nftables" and self._present(item, target):
                if item not in added:
                    log.info("TPROXY: %s (mark %#x, table %d) is already there: used, and left there",
                             item, target.mark, target.table)  # fmt: skip
                continue
            try:
                self._add(item, target)
            except process.KernelError as exc:
                raise EngineError(f"TPROXY: {item} (mark {target.mark:#x}, table {target.table}) cannot be added",
                                  [str(exc)]) from None  # fmt: skip
            if item not in added:
                added.append(item)
            self._write(Record(target, added))
            log.info("TPROXY: %s in place (mark %#x, table %d)", item, target.mark, target.table)
        self._write(Record(target, added))

    def plan(self, old: Config, new: Config, base_dir: Path) -> Prepared:
        target = wanted(new)
        changed = target != self.record.running
        steps: list[str] = []
        if changed and target.empty:
            steps = [f"tproxy: the TPROXY rule, route and nftables table {TABLE_NAME} removed (no transparent service is left)"]
        elif changed:
            steps = [f"tproxy: {line}" for line in target.text().splitlines()[: 2 * len(target.families)]]
            steps.append(f"tproxy: nftables table {TABLE_NAME} marks replies to transparent sockets with {target.mark:#x}")
        return Prepared(self.name, changed, target.digest(), steps, data=Work(target))

    async def check(self, prepared: Prepared) -> None:
        target: Wanted = prepared.data.target
        if target.empty:
            return
        try:
            await asyncio.to_thread(process.nft_check, target.ruleset())
        except process.KernelError as exc:
            raise EngineError("TPROXY: nftables refused the table that marks transparent replies", [str(exc)]) from None

    async def _converge_to(self, target: Wanted) -> None:
        try:
            await asyncio.to_thread(self._converge, target)
        except process.KernelError as exc:  # reading the rules or routes failed
            raise EngineError("TPROXY: the policy rules or routes cannot be read", [str(exc)]) from None

    async def commit(self, prepared: Prepared) -> None:
        work: Work = prepared.data
        work.previous = self.record.running
        await self._converge_to(work.target)

    async def undo(self, prepared: Prepared) -> None:
        work: Work = prepared.data
        if work.previous is None:
            return
        await self._converge_to(work.previous)

    def discard(self, prepared: Prepared) -> None:
        pass  # nothing was made before commit

    def applied_digest(self) -> str | None:
        return self._read().running.digest()

    # --- start, supervise, stop ----------------------------------------------------------------------

    async def start(self, config: Config, base_dir: Path) -> None:
        target = wanted(config)
        if target.empty and not self.record.added:
            return  # nothing transparent, nothing left by a previous run
        if target == self.record.running and self.record.added:
            log.info("TPROXY: adopting what this state directory installed (mark %#x, table %d)", target.mark, target.table)
        await self._converge_to(target)

    async def supervise(self) -> None:
        await self._stopping.wait()  # the kernel keeps rules, routes and tables: nothing to restart

    async def stop(self) -> None:
        self._stopping.set()
        if not self.record.added and not self.record_file.exists():
            return  # this state directory never installed anything
        try:
            await self._converge_to(Wanted())
        except EngineError as exc:
            self.error = str(exc)
            raise
        self.record_file.unlink(missing_ok=True)

    def observe(self) -> EngineState:
        r = self.record.running
        return EngineState(self.name, True, error=self.error,
                           detail={"mark": r.mark, "table": r.table, "families": list(r.families),
                                   "added": list(self.record.added)})  # fmt: skip

    def orphans(self) -> list[str]:
        return []
