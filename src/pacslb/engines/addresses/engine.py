"""The VIP addresses of a single node as an engine of the appliance (engines/contract.py).

With `settings.network.interface`, the address of every listener (but loopback and wildcards) goes on that
interface as a host address (/32, /128), announced with a gratuitous ARP (`arping -U`) or an unsolicited
neighbour advertisement. It is the first engine: HAProxy binds the addresses, so they come before it, and
leave after it when the appliance stops.

  start      adopt: the addresses this state directory added before (its record) are taken as its own;
             what is missing is added, what is no longer wanted and was added by it is removed
  plan       the wanted addresses (render.py, pure); changed when they differ from what it runs
  check      the interface exists
  commit     add (and announce) the new ones, remove the dropped ones it added; record
  undo       the reverse of what commit did
  stop       remove every address it added (a hand-over for an upgrade leaves them, as every engine)

It never removes an address it did not add: one already on the interface (added by hand, by DHCP) is
used as it is and left there. The record, `<state>/addresses/added.json`, says which ones it added.
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
from .render import Wanted, wanted

log = logging.getLogger("pacslb.addresses")


@dataclass
class Record:
    """What runs: the interface, the addresses wanted on it, and those of them this appliance added."""

    interface: str | None = None
    wanted: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)

    def digest(self) -> str | None:
        return Wanted(self.interface, tuple(self.wanted)).digest()


@dataclass
class Work:
    target: Wanted
    previous: Record | None = None
    added: list[str] = field(default_factory=list)  # by this commit (undo deletes them)
    removed: list[str] = field(default_factory=list)  # by this commit (undo adds them back)
    previous_interface: str | None = None


class AddressesEngine:
    name = "addresses"

    def __init__(self, paths: StatePaths) -> None:
        self.dir = paths.root / "addresses"
        self.record_file = self.dir / "added.json"
        self.record = self._read()
        self.error: str | None = None
        self._stopping = asyncio.Event()

    def wanted(self, config: Config) -> bool:
        return config.settings.network.interface is not None or config.cluster is not None or bool(self.record.added)

    # --- the record ----------------------------------------------------------------------------------

    def _read(self) -> Record:
        def parse(data: dict) -> Record:
            return Record(data.get("interface"), list(data.get("wanted", [])), list(data.get("added", [])))

        return files.read_record(self.record_file, parse, Record(), log, "the addresses it named are left alone")

    def _write(self, record: Record) -> None:
        files.write_record(self.record_file, {"interface": record.interface, "wanted": record.wanted, "added": record.added})
        self.record = record

    # --- the work ------------------------------------------------------------------------------------

    def _converge(self, target: Wanted, work: Work | None = None) -> None:
        """Make the interface carry `target`: add what is missing, remove what this appliance added and no longer
        wants (on the interface it used, which may differ). Recorded after every step, so that a failure half-way
        leaves a record of what is really there."""
        current = self.record
        added = list(current.added)
        if current.interface is not None and current.interface != target.interface:
            drop = list(added)
        else:
            drop = [a for a in added if a not in target.addresses]
        for address in drop:
            try:
                process.delete(current.interface, address)  # type: ignore[arg-type]
            except process.AddressError as exc:
                if process.interface_exists(current.interface) and address in process.addresses(current.interface):  # type: ignore[arg-type]
                    raise EngineError(
                        f"the VIP address {address} cannot be removed from {current.interface}", [str(exc)]
                    ) from None
            added.remove(address)
            if work is not None:
                work.removed.append(address)
                work.previous_interface = current.interface
            self._write(Record(current.interface, current.wanted, added))
            log.info("removed VIP address %s from %s", address, current.interface)
        if target.interface is None:
            self._write(Record())
            return
        present = process.addresses(target.interface)
        for address in target.addresses:
            if address in added and address in present:
                continue
            if address in present:  # someone else's: used as it is, and left there when pacslb stops
                log.info("VIP address %s is already on %s: used, and left there", address, target.interface)
                continue
            try:
                process.add(target.interface, address, target.announce)
            except process.AddressError as exc:
                raise EngineError(f"the VIP address {address} cannot be added to {target.interface}", [str(exc)]) from None
            if address not in added:
                added.append(address)
            if work is not None:
                work.added.append(address)
            self._write(Record(target.interface, list(target.addresses), added))
            log.info("added VIP address %s to %s%s", address, target.interface, " (announced)" if target.announce else "")
        self._write(Record(target.interface, list(target.addresses), added))

    def plan(self, old: Config, new: Config, base_dir: Path) -> Prepared:
        target = wanted(new)
        changed = Wanted(self.record.interface, tuple(self.record.wanted)) != target
        steps = [f"addresses: {a} on {target.interface}" for a in target.addresses if a not in self.record.wanted]
        steps += [f"addresses: {a} off {self.record.interface}" for a in self.record.added if a not in target.addresses]
        return Prepared(self.name, changed, target.digest(), steps if changed else [], data=Work(target))

    async def check(self, prepared: Prepared) -> None:
        target: Wanted = prepared.data.target
        if target.interface is not None and not await asyncio.to_thread(process.interface_exists, target.interface):
            raise EngineError(
                f"{target.setting}: there is no interface {target.interface!r} on this host "
                "(ip link shows them): name one that exists",
                refused=True,
            )

    async def commit(self, prepared: Prepared) -> None:
        work: Work = prepared.data
        work.previous = Record(self.record.interface, list(self.record.wanted), list(self.record.added))
        try:
            await asyncio.to_thread(self._converge, work.target, work)
        except process.AddressError as exc:
            raise EngineError("the VIP addresses cannot be read", [str(exc)]) from None

    async def undo(self, prepared: Prepared) -> None:
        work: Work = prepared.data
        if work.previous is None:
            return
        await asyncio.to_thread(self._undo, work)

    def _undo(self, work: Work) -> None:
        assert work.previous is not None
        for address in work.added:
            try:
                process.delete(work.target.interface, address)  # type: ignore[arg-type]
            except process.AddressError as exc:
                log.error("undo: %s", exc)
        for address in work.removed:
            try:
                process.add(work.previous_interface, address)  # type: ignore[arg-type]
            except process.AddressError as exc:
                log.error("undo: %s", exc)
        self._write(work.previous)

    def discard(self, prepared: Prepared) -> None:
        pass  # nothing was made before commit

    def applied_digest(self) -> str | None:
        return self._read().digest()

    # --- start, supervise, stop ----------------------------------------------------------------------

    async def start(self, config: Config, base_dir: Path) -> None:
        target = wanted(config)
        if target.interface is None and not self.record.added:
            return  # no VIP addresses wanted, none left by a previous run
        if target.interface is not None and not await asyncio.to_thread(process.interface_exists, target.interface):
            raise EngineError(f"{target.setting}: there is no interface {target.interface!r} on this host", refused=True)
        try:
            await asyncio.to_thread(self._converge, target)
        except process.AddressError as exc:
            raise EngineError("the VIP addresses cannot be brought up", [str(exc)]) from None

    async def supervise(self) -> None:
        await self._stopping.wait()  # the kernel keeps the addresses: nothing to restart

    async def stop(self) -> None:
        self._stopping.set()
        if not self.record.added and not self.record_file.exists():
            return  # this state directory never had VIP addresses of its own
        try:
            await asyncio.to_thread(self._converge, Wanted(None, ()))
        except (EngineError, process.AddressError) as exc:
            self.error = str(exc)
            raise
        self.record_file.unlink(missing_ok=True)

    def observe(self) -> EngineState:
        return EngineState(self.name, True, error=self.error,
                           detail={"interface": self.record.interface, "added": list(self.record.added)})  # fmt: skip

    def orphans(self) -> list[str]:
        return []
