"""Is this cluster node cut off from the others? (issue 20; docs/cluster.md, "A node cut off from the others").

A node that cannot write to etcd may be on the wrong side of a partition, or etcd may have lost its quorum while
every node is still there (two members' etcd stopped, say). Only the first is a reason to withdraw: a node cut off
serves a configuration the cluster may already have replaced, and its persistence entries no longer reach the others;
withdrawing in the second would take every node of the cluster off the routers at once.

So the verdict has two inputs:
  - how long etcd's quorum has been out of this node's reach (its member key could not be renewed): at least `grace`;
  - which other nodes answer at all on their address: a TCP connection to their HAProxy peers port that is
    accepted OR refused proves the node is there (its kernel answered); only a timeout or "no route" does not.
A node that reaches fewer than half of the other nodes (it and the ones it reaches are no majority of the cluster)
is partitioned. With three nodes: a node that reaches neither of the others; two nodes that reach only each other
are a majority and keep serving. A cluster of one or two nodes is never judged cut off: with two, the survivor of a
death sees exactly what a cut-off node sees, and withdrawing would take the cluster's last node off the routers
(`MIN_NODES`).

The price, written down in docs/cluster.md: when a majority of the nodes dies at once, the survivors cannot tell it
from a partition and withdraw too. `cluster.on_partition: keep-serving` keeps them announcing instead (a site whose
routers are the real arbiter: it then accepts a cut-off node serving a stale revision).

    verdict(nodes, reachable, quorum_lost_for, grace) -> reason or None     (pure)
    reach(addresses, port, timeout) -> {address: reachable}                 (the probe, asyncio I/O)
"""

from __future__ import annotations

import asyncio
import errno

MIN_NODES = 3  # below this a cut cannot be told from a death: no verdict
PROBE_TIMEOUT = 1.0  # seconds a TCP connect to another node may take before it counts as unreachable

# "the kernel of that node answered": a refusal (RST) is an answer; the others are silence or no route
_ANSWERED = (ConnectionRefusedError, ConnectionResetError)
_NO_ROUTE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT}


def majority(nodes: int, reachable_others: int) -> bool:
    """Does this node with the other nodes it reaches make a strict majority of the cluster's `nodes`?"""
    return 2 * (reachable_others + 1) > nodes


def verdict(nodes: int, reachable: dict[str, bool], quorum_lost_for: float | None, grace: float) -> str | None:
    """Why this node counts as cut off from the cluster, or None.

    `nodes`: how many nodes the cluster has (this one included); `reachable`: every other node's address -> answered;
    `quorum_lost_for`: seconds since this node last wrote to etcd (None: it just did)."""
    if nodes < MIN_NODES or quorum_lost_for is None or quorum_lost_for < grace:
        return None
    found = sum(1 for ok in reachable.values() if ok)
    if majority(nodes, found):
        return None
    silent = sorted(address for address, ok in reachable.items() if not ok)
    # the same words while nothing changes: the caller logs and re-evaluates only when they do
    return (f"partitioned: etcd's quorum out of reach for {grace:g}s or more, and this node reaches {found} of the "
            f"{nodes - 1} other nodes (silent: {', '.join(silent) or 'none'}): no majority of {nodes}")  # fmt: skip


async def _answers(address: str, port: int, timeout: float) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(address, port), timeout)
    except _ANSWERED:
        return True
    except (asyncio.TimeoutError, TimeoutError):
        return False
    except OSError as exc:
        return exc.errno not in _NO_ROUTE
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True


async def reach(addresses: list[str], port: int, timeout: float = PROBE_TIMEOUT) -> dict[str, bool]:
    """Every address -> whether its node answered a TCP connection on `port` (accepted or refused) within `timeout`."""
    results = await asyncio.gather(*(_answers(address, port, timeout) for address in addresses))
    return dict(zip(addresses, results, strict=True))
