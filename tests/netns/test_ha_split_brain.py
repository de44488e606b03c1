"""Split brain on the HA pair for real (issue 13): every split brain ends with the client answered, and only
real split brains are reported.

The bed (tests/netns/ha_support.py) is built once for the module: two appliances (`pacslb up`: HAProxy,
keepalived, peer link), a client loop sending a request every 10 ms, two real servers. The rounds are
those of tests/netns/split_brain_support.py. Traffic only inside the bed's namespaces.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ha_support import Pair, build_pair, sigterm_as_interrupt
from split_brain_support import answered_after, split_brain_round

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.engine, pytest.mark.slow]

CUTS = 20  # the issue: at least 20 cuts
HOLD = 0.8  # seconds of each cut: lb2 takes over after about 0.35 s and the client follows it, then a few adverts more
ANSWERED_WITHIN = 1.0  # the issue: every round, the client is answered within 1 s of the restore
SYNC_INTERVAL = 0.5  # ha.sync.interval of the bed's configuration
SPLIT_BRAIN_LINE = re.compile(r"^\S+ \S+ (\w+)\s+pacslb\.ha: split brain: (.*)$", re.M)


@pytest.fixture(scope="module")
def pair():
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    with sigterm_as_interrupt():
        bed = build_pair(tag="sb")
        try:
            yield bed
        finally:
            bed.close()


def _lb1_master(pair: Pair) -> None:
    """Both running, lb1 the master (the rounds need it: lb1, the primary, wins every split brain)."""
    for name, node in pair.nodes.items():
        if node.proc is None or node.proc.poll() is not None:
            pair.start(name)
    if pair.wait_one_master() != "lb1":
        pair.stop("lb2")  # lb2 hands the VIP over (priority 0) and comes back as backup (nopreempt)
        pair.start("lb2")
    assert pair.wait_one_master() == "lb1"


def _log_mark(pair: Pair) -> dict[str, int]:
    return {name: node.log.stat().st_size for name, node in pair.nodes.items()}


def _split_brain_lines(pair: Pair, mark: dict[str, int]) -> dict[str, list[tuple[str, str]]]:
    """Each node's `split brain:` log lines since `mark`, as (level, message)."""
    return {name: SPLIT_BRAIN_LINE.findall(node.log.read_bytes()[mark[name]:].decode(errors="replace"))
            for name, node in pair.nodes.items()}  # fmt: skip


def _both_compared_since(pair: Pair, moment: float) -> bool:
    """Each node had an answer from its peer (and so compared the two histories) two sync intervals after `moment`."""
    for node in pair.nodes.values():
        status = node.ha_status()
        if not status or not status["peer"]["reachable"] or (status["peer"]["last_seen"] or 0) < moment + 2 * SYNC_INTERVAL:
            return False
    return True


def test_every_split_brain_ends_with_the_client_answered_within_a_second(pair: Pair, tmp_path: Path):
    """20 cuts; in each the client follows lb2 during the cut, and lb1's gratuitous ARPs after the restore bring it back.

    Before higher_prio_send_advert, 3 of 20 such rounds left the client sending to lb2 (bench/split_brain.py)."""
    _lb1_master(pair)
    stop_file = tmp_path / "stop"
    loop = pair.loop(stop_file, 600)
    rounds = []
    try:
        for _ in range(CUTS):
            rounds.append(split_brain_round(pair, HOLD, limit=ANSWERED_WITHIN))
    finally:
        stop_file.touch()
        out, _ = loop.communicate(timeout=60)
    records = json.loads(out)
    answered = [
        answered_after(records, r.restored, rounds[i + 1].cut if i + 1 < len(rounds) else records[-1][1] + 1)
        for i, r in enumerate(rounds)
    ]
    back = [None if r.back is None else round(r.back - r.restored, 3) for r in rounds]
    print(f"\n{CUTS} split brains: lb2 released the VIP after (s) {[round(r.settled - r.restored, 3) for r in rounds]}; "
          f"the client's ARP entry named lb1 again after (s) {back}; answered after (s) "
          f"{[None if a is None else round(a, 3) for a in answered]}; requests {len(records)}")  # fmt: skip
    if not all(b is not None for b in back) or not all(a is not None and a < ANSWERED_WITHIN for a in answered):
        for r in rounds:
            print(f"round: cut {r.cut:.3f} restored {r.restored:.3f} settled {r.settled:.3f} back {r.back}")
        for node in pair.nodes.values():
            print(f"--- {node.name} keepalived.log\n" + (node.state / "keepalived" / "keepalived.log").read_text()[-6000:])
    assert all(b is not None for b in back), f"the client stayed on lb2 after the restore in rounds {back}"
    assert all(a is not None and a < ANSWERED_WITHIN for a in answered), answered
