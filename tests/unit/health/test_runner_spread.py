"""Checker spreads the first checks of new watches over one interval, with a fixed offset per key."""

from __future__ import annotations

import asyncio

from pacslb.health import Checker, Result, Target, Watch


def test_first_check_delays_are_fixed_per_key_within_one_interval_and_spread():
    keys = [("pacs", f"archive{i}") for i in range(1000)]
    delays = [Checker.first_check_delay(key, 5.0) for key in keys]
    assert all(0 <= d < 5.0 for d in delays)
    assert delays == [Checker.first_check_delay(key, 5.0) for key in keys]  # the same on every call (and restart)
    assert Checker.first_check_delay(("pacs", "archive1"), 10.0) == 2 * delays[1]  # a share of the interval
    # spread: every tenth of the interval gets between 5% and 15% of the first checks
    tenths = [sum(1 for d in delays if k * 0.5 <= d < (k + 1) * 0.5) for k in range(10)]
    assert all(50 <= n <= 150 for n in tenths), tenths
    # the key is the pair, not the concatenation of its words
    assert Checker.first_check_delay(("ab", "c"), 1.0) != Checker.first_check_delay(("a", "bc"), 1.0)


class _Recorder:
    timeout = 1.0

    def __init__(self, started: dict, key) -> None:
        self.started, self.key = started, key

    async def probe(self, target: Target) -> Result:
        self.started.setdefault(self.key, (asyncio.get_running_loop().time(), len(self.started)))
        return Result(True, "ok")


async def test_new_watches_start_at_their_offset_not_all_at_once():
    started: dict = {}
    interval = 0.5
    keys = [("vs", f"rs{i}") for i in range(6)]
    watches = [Watch(k, Target("127.0.0.1", 1), _Recorder(started, k), interval, rise=1, fall=1) for k in keys]

    async def on_change(watch: Watch) -> None:
        pass

    checker = Checker(on_change)
    t0 = asyncio.get_running_loop().time()
    checker.replace(watches)
    try:
        deadline = t0 + 30
        while len(started) < len(keys):
            assert asyncio.get_running_loop().time() < deadline, "first checks did not all start"
            await asyncio.sleep(0.01)
    finally:
        await checker.close()
    for key in keys:
        # never before its offset (a loaded machine may start it later, never earlier)
        assert started[key][0] - t0 >= Checker.first_check_delay(key, interval) - 0.001
    order = sorted(keys, key=lambda k: Checker.first_check_delay(k, interval))
    assert order != keys  # these keys' offsets are not in key order, so the order below is the offsets' doing
    assert sorted(keys, key=lambda k: started[k][1]) == order  # first checks started in offset order
