"""Split-brain rounds on the HA bed (ha_support.py): cut the link between the two nodes, restore it, and
see where the client's ARP entry for the VIP points.

One round, on a bed whose master is lb1 (primary-wins: lb1 wins every split brain):

1. both nodes see each other, lb1 holds the VIP, the client's ARP entry for the VIP names lb1's MAC;
2. the link between the nodes is cut (nftables in each node drops the other's packets): lb2 misses three
   adverts, becomes master and sends gratuitous ARPs, and the client follows it (its entry names lb2);
3. the cut lasts `hold` seconds (counted from the cut), then the link is restored at `restored`;
4. VRRP settles it: lb2 hears lb1's higher priority and goes backup. Whether the client comes back to lb1
   depends on a gratuitous ARP from lb1 after the restore: without one, the client keeps sending to
   lb2's MAC, where the VIP is gone, until its ARP entry expires (24 to 44 s measured in issue 13).

`split_brain_round` returns when the client's entry names lb1 again, or after `limit` seconds (stranded;
its entry is then flushed so that the next round starts clean) and lb1 serves the client again. Used by
tests/netns/test_ha_split_brain.py and bench/split_brain.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ha_support import VIP, Pair, wait_until

from pacslb.engines.haproxy.runtime import RuntimeAPI


@dataclass
class Round:
    cut: float  # time.time() of the cut
    followed: float  # the client's ARP entry names lb2 (until then lb1 answers it as before the cut)
    restored: float  # of the restore
    settled: float  # lb2 no longer holds the VIP
    back: float | None  # the client's ARP entry names lb1 again (None: stranded past the limit)


def mac(pair: Pair, name: str) -> str:
    return pair.lab.mac(pair.nodes[name].ns, "l0")


def client_points_to(pair: Pair) -> str | None:
    """The MAC the client's ARP entry for the VIP names (None: no usable entry)."""
    out = pair.lab.sh(pair.client, f"ip -4 neigh show {VIP} dev c0", check=False)
    parts = out.split()
    return parts[parts.index("lladdr") + 1] if "lladdr" in parts else None


def flush_client(pair: Pair) -> None:
    pair.lab.sh(pair.client, f"ip -4 neigh flush to {VIP} dev c0", check=False)


def split_brain_round(pair: Pair, hold: float, limit: float) -> Round:
    """One cut of `hold` seconds and its restore (see the module docstring); the caller runs the client loop."""
    winner, loser = mac(pair, "lb1"), mac(pair, "lb2")
    wait_until(lambda: pair.holders() == ["lb1"], 30, 0.05, "lb1 alone to hold the VIP before the cut")
    if client_points_to(pair) != winner:
        flush_client(pair)  # the client's traffic (the loop) resolves the VIP again
        wait_until(lambda: client_points_to(pair) == winner, 10, 0.05, "the client to reach lb1 before the cut")
    cut = time.time()
    pair.cut_peer_link()
    try:
        # lb2 misses three adverts, takes the VIP and announces it: the client follows lb2
        wait_until(lambda: pair.holders() == ["lb1", "lb2"], 10, 0.02, "lb2 to take the VIP during the cut")
        wait_until(lambda: client_points_to(pair) == loser, 10, 0.02, "the client to follow lb2's gratuitous ARP")
        followed = time.time()
        remaining = cut + hold - time.time()
        if remaining > 0:
            time.sleep(remaining)  # the cut's length is the scenario, not a wait for a condition
    finally:
        restored = time.time()
        pair.restore_peer_link()
    wait_until(lambda: pair.holders() == ["lb1"], 10, 0.01, "lb2 to release the VIP after the restore")
    settled = time.time()
    try:
        wait_until(lambda: client_points_to(pair) == winner, max(limit - (settled - restored), 0.1), 0.01,
                   "the client's ARP entry to name lb1 again")  # fmt: skip
        back: float | None = time.time()
    except AssertionError:
        back = None
        flush_client(pair)
    if back is not None:
        # lb1 serves the client again (so the round's answers end before the next cut, which lb1 answers through)
        start = served(pair, "lb1")
        wait_until(lambda: served(pair, "lb1") > start + 1, 10, 0.01, "lb1 to serve the client again")
    return Round(cut, followed, restored, settled, back)


def served(pair: Pair, name: str) -> int:
    """Sessions the node's HAProxy sent to the real servers of `web` (its runtime API: no process started)."""
    text = RuntimeAPI(pair.nodes[name].paths.haproxy_admin_socket, timeout=5).command("show stat")
    lines = text.splitlines()
    header = lines[0].lstrip("# ").split(",")
    for line in lines[1:]:
        fields = line.split(",")
        if fields[:2] == ["web", "BACKEND"]:
            return int(fields[header.index("stot")] or 0)
    raise AssertionError(f"{name}: no backend web in show stat")


def answered_after(records: list, restored: float, until: float) -> float | None:
    """Seconds from `restored` to the first answer after the last failed request in [restored, until), from the
    client loop's records ([start, end, ok, server]); 0.0 when no request failed then, None when none was answered."""
    inside = [r for r in records if restored <= r[1] < until]
    failed = [r for r in inside if not r[2]]
    if not failed:
        return 0.0
    after = [r[1] for r in inside if r[2] and r[0] >= failed[-1][1]]
    return after[0] - restored if after else None
