"""etcd's membership from pacslb (issue 20; docs/cluster.md "A member whose data is lost"): `pacslb cluster members`
and `pacslb cluster rejoin`, without etcdctl.

  members  etcd's member list (name, ID, peer and client URLs, started or not, the leader), as one member says it
  rejoin   on a node whose etcd data directory was lost or is corrupt: through the *other* members (this one has
           nothing to say), check their quorum, find this node's old member (by name or peer URL), stop this
           node's member, remove the old member, add it again, start this node's member on an empty data directory
           with `initial-cluster-state: existing` (engines/etcd/engine.py, its marker file), and wait until it
           caught up: a linearizable read through this node's own member answers. The old data directory is kept
           beside the new one (`data.lost-<time>`).

Refused, with nothing changed: a node that is not an etcd member, a cluster whose etcd has no other member, a member
that is healthy (it answers with quorum; `force` rebuilds it anyway), the other members without quorum (etcd cannot
remove or add a member without it), and an etcd membership that differs from the `cluster` section (etcd checks
`initial-cluster` against the running membership when a member joins: make them agree first).

The steps after the quorum check run under the appliance's gate: no change commits (nor restarts etcd) meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

from ..engines.etcd.process import EtcdProcessError
from ..engines.etcd.render import TLSFiles, url
from ..model.cluster import Cluster
from .etcd import EtcdClient, EtcdError
from .keys import Keys

log = logging.getLogger("pacslb.cluster")

CATCH_UP_TIMEOUT = 60.0  # how long a rejoined member may take to catch up before the answer says it has not yet
CATCH_UP_POLL = 0.3
HEALTHY_TIMEOUT = 2.0
ADD_WAIT, ADD_POLL = (
    15.0,
    0.5,
)  # etcd takes an addition once its members have been connected for 5 s (`_add`)  # the look at this node's own member: healthy when a linearizable read answers within it


class MemberEngine(Protocol):
    """What a rejoin asks of this node's etcd engine (engines/etcd/engine.py)."""

    gate: asyncio.Lock

    async def stop_member(self) -> None: ...

    async def start_again_on_its_data(self) -> None: ...

    async def start_existing(self) -> Any: ...

    async def joined(self) -> None: ...


def member_id(member: dict[str, Any]) -> str:
    """An etcd member ID as etcdctl prints it (hexadecimal); the gateway says it in decimal."""
    return f"{int(member.get('ID') or 0):x}"


def describe(members: list[dict[str, Any]], leader: int) -> list[dict[str, Any]]:
    """The member list as `pacslb cluster members` shows it (pure): started means the member has run and
    published its name (a member added and not started yet has none)."""
    rows = []
    for m in sorted(members, key=lambda m: (m.get("name") or "~", m.get("ID") or "")):
        rows.append({"name": m.get("name") or "", "id": member_id(m), "peer_urls": list(m.get("peerURLs") or []),
                     "client_urls": list(m.get("clientURLs") or []), "started": bool(m.get("name")),
                     "leader": leader != 0 and int(m.get("ID") or 0) == leader})  # fmt: skip
    return rows


async def members(client: EtcdClient) -> tuple[int, dict[str, Any]]:
    """etcd's members (HTTP status, answer)."""
    try:
        found = await client.member_list()
        try:
            leader = await client.leader()
        except EtcdError:
            leader = 0  # the list is worth showing without a leader
    except EtcdError as exc:
        return 503, {"ok": False, "outcome": "refused", "message": f"etcd's members cannot be read: {exc}"}
    return 200, {"ok": True, "members": describe(found, leader), "leader": f"{leader:x}" if leader else None}


def peer_url(cluster: Cluster, name: str) -> str:
    node = next(n for n in cluster.nodes if n.name == name)
    return url(str(node.address), cluster.etcd.peer_port, cluster.etcd.tls is not None)


def find_own(members: list[dict[str, Any]], name: str, own_peer: str) -> dict[str, Any] | None:
    """This node's member in etcd's list: the one with its peer URL (what etcd identifies a member by), else its
    name; None when etcd has none (a rejoin that removed it and failed before adding it again)."""
    for m in members:
        if own_peer in (m.get("peerURLs") or []):
            return m
    return next((m for m in members if m.get("name") == name), None)


def membership_difference(members: list[dict[str, Any]], own: dict[str, Any] | None, expected: set[str]) -> str | None:
    """Why etcd's other members are not the section's other members (compared by peer URL), or None."""
    found = {u for m in members if m is not own for u in (m.get("peerURLs") or [])}
    if found == expected:
        return None
    extra, missing = sorted(found - expected), sorted(expected - found)
    parts = ([f"etcd has {', '.join(extra)}, which the cluster section does not name"] if extra else []) + (
        [f"the cluster section names {', '.join(missing)}, which etcd does not have"] if missing else []
    )
    return "; ".join(parts)


def _refused(code: int, message: str) -> tuple[int, dict[str, Any]]:
    return code, {"ok": False, "outcome": "refused", "message": message}


async def _answers(endpoint: list[str], tls: TLSFiles | None, key: str, timeout: float) -> bool:
    """Whether a linearizable read through these members answers (they have quorum and are caught up)."""
    client = EtcdClient(endpoint, timeout=timeout, tls=tls)
    try:
        await client.get(key)
        return True
    except EtcdError:
        return False
    finally:
        await client.close()


async def rejoin(cluster: Cluster, engine: MemberEngine, tls: TLSFiles | None, force: bool = False,
                 catch_up: float = CATCH_UP_TIMEOUT) -> tuple[int, dict[str, Any]]:  # fmt: skip
    """Rejoin this node's etcd member to the cluster on an empty data directory (see the module's docstring).
    The HTTP status and answer; refused answers changed nothing."""
    me = cluster.this_node
    if not me.etcd_member:
        return _refused(409, f"node {me.name} is no etcd member (etcd_member: false): it runs no member to rejoin")
    others = [n for n in cluster.etcd_members if n.name != me.name]
    if not others:
        return _refused(409, f"node {me.name} is the cluster's only etcd member: there is no other member to rejoin "
                        "through (rebuild the cluster instead: docs/cluster.md, \"Backup\"); nothing was changed")  # fmt: skip
    tls_on = cluster.etcd.tls is not None
    own_client = [url(str(me.address), cluster.etcd.client_port, tls_on)]
    other_clients = [url(str(n.address), cluster.etcd.client_port, tls_on) for n in others]
    probe = Keys(cluster.name).revision
    if not force and await _answers(own_client, tls, probe, HEALTHY_TIMEOUT):
        return _refused(409, f"node {me.name}'s etcd member is healthy (it answers with the cluster's quorum): nothing to "
                        "rejoin; `pacslb cluster rejoin --force` replaces its data with the others' anyway")  # fmt: skip
    client = EtcdClient(other_clients, timeout=cluster.etcd.dial_timeout.seconds, tls=tls)
    try:
        return await _rejoin(cluster, engine, tls, client, probe, own_client, catch_up)
    finally:
        await client.close()


async def _rejoin(cluster: Cluster, engine: MemberEngine, tls: TLSFiles | None, client: EtcdClient, probe: str,
                  own_client: list[str], catch_up: float) -> tuple[int, dict[str, Any]]:  # fmt: skip
    me = cluster.this_node
    try:
        await client.get(probe)  # linearizable: answers only with quorum
        listed = await client.member_list()
    except EtcdError as exc:
        return _refused(503, f"the other etcd members have no quorum ({exc}): a member can be neither removed nor added "
                        "without it; nothing was changed. Bring the other members back first")  # fmt: skip
    own_peer = peer_url(cluster, me.name)
    own = find_own(listed, me.name, own_peer)
    expected = {peer_url(cluster, n.name) for n in cluster.etcd_members if n.name != me.name}
    if (difference := membership_difference(listed, own, expected)) is not None:
        return _refused(409, f"etcd's membership differs from the cluster section ({difference}): a rejoining member must "
                        "name the running membership; make them agree first (the section's `nodes` and `etcd_member`, "
                        "or `etcdctl member add/remove`); nothing was changed")  # fmt: skip
    async with engine.gate:  # no change commits, nor restarts etcd, until the member runs again
        await engine.stop_member()
        if own is not None:
            try:
                await client.member_remove(int(own["ID"]))
            except EtcdError as exc:
                await _start_back(engine)
                return _refused(503, f"etcd did not remove this node's old member {member_id(own)} ({exc}): nothing was "
                                "changed; its member was started again on its data directory")  # fmt: skip
            log.warning("etcd member %s (%s) removed for a rejoin", member_id(own), me.name)
        try:
            new_id = await _add(client, own_peer)
        except EtcdError as exc:
            return 503, {"ok": False, "outcome": "failed",
                         "message": f"etcd removed this node's old member but did not add it again ({exc}): run "
                                    "`pacslb cluster rejoin` again once the other members have quorum"}  # fmt: skip
        log.warning("etcd member %x (%s) added at %s: starting it on an empty data directory", new_id, me.name, own_peer)
        try:
            kept = await engine.start_existing()
        except (EtcdProcessError, OSError) as exc:  # what the engine's start raises: said in the answer
            return 503, {"ok": False, "outcome": "failed",
                         "message": f"etcd member {new_id:x} was added, and this node's member did not start on an empty "
                                    f"data directory ({exc}): see <state>/etcd/etcd.log, then run `pacslb cluster rejoin` "
                                    "again"}  # fmt: skip
    kept_note = f"; its previous data directory is kept at {kept} (remove it when done)" if kept else ""
    deadline = time.monotonic() + catch_up
    while time.monotonic() < deadline:
        if await _answers(own_client, tls, probe, HEALTHY_TIMEOUT):
            await engine.joined()
            log.warning("etcd member %x (%s) rejoined and caught up", new_id, me.name)
            return 200, {"ok": True, "id": f"{new_id:x}", "removed": member_id(own) if own else None,
                         "message": f"node {me.name} rejoined the cluster's etcd as member {new_id:x}"
                                    f"{f' (member {member_id(own)} removed)' if own else ''} and caught up{kept_note}"}  # fmt: skip
        await asyncio.sleep(CATCH_UP_POLL)
    return 504, {"ok": False, "outcome": "failed", "id": f"{new_id:x}",
                 "message": f"node {me.name}'s etcd member {new_id:x} was added and started, and has not caught up within "
                            f"{catch_up:g}s: look at `pacslb cluster members` and <state>/etcd/etcd.log{kept_note}"}  # fmt: skip


async def _add(client: EtcdClient, peer: str, wait: float | None = None) -> int:
    """Add the member at `peer`; its ID. etcd refuses an addition ("unhealthy cluster") until every started member
    has been connected to the others for 5 s (its HealthInterval): a member that just came back. Asked again for
    up to `wait` seconds."""
    deadline = time.monotonic() + (ADD_WAIT if wait is None else wait)
    while True:
        try:
            new_id, _ = await client.member_add([peer])
            return new_id
        except EtcdError as exc:
            if "unhealthy cluster" not in str(exc) or time.monotonic() >= deadline:
                raise
            log.info("etcd does not add a member yet (%s): asking again", exc)
            await asyncio.sleep(ADD_POLL)


async def _start_back(engine: MemberEngine) -> None:
    try:
        await engine.start_again_on_its_data()
    except Exception:  # a broken data directory may not start: the answer says what was done, the log why
        log.exception("this node's etcd member could not be started again on its data directory")
