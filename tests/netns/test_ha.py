"""The HA pair for real: two appliances (`pacslb up`: HAProxy, keepalived, peer link) in network namespaces.

The bed (tests/netns/ha_support.py) is built once for the module and left with both nodes running and
exactly one master after every test. Traffic only inside its namespaces.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ha_support import CLIENTS, PACSLB, Pair, build_pair, describe, gaps, sigterm_as_interrupt, wait_until

from pacslb.engines.haproxy.process import children, read_pidfile
from pacslb.engines.haproxy.runtime import RuntimeAPI

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.engine, pytest.mark.slow]

GAP_BOUND = 1.0  # the issue: a client loop sees a gap below 1 s
# A failover's window: from the moment it is triggered to this long after the backup reports MASTER
# (the old master's `pacslb stop` may still be ending then; its in-flight requests belong to the failover).
WINDOW_AFTER = 1.0


@pytest.fixture(scope="module")
def pair():
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    with sigterm_as_interrupt():
        bed = build_pair()
        try:
            yield bed
        finally:
            bed.close()


def _both_up(pair: Pair) -> str:
    for name, node in pair.nodes.items():
        if node.proc is None or node.proc.poll() is not None:
            pair.start(name)
    return pair.wait_one_master()


def _pacslb(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*PACSLB, *args], capture_output=True, text=True, timeout=timeout)


def _stick_entries(pair: Pair, name: str) -> int:
    text = RuntimeAPI(pair.nodes[name].paths.haproxy_admin_socket, timeout=5).command("show table web")
    return sum(1 for line in text.splitlines() if "key=" in line)


def _failover_with_loop(pair: Pair, how: str, tmp: Path) -> tuple[float, list, str, str]:
    master = _both_up(pair)
    backup = pair.other(master)
    stop_file = tmp / f"stop-{how}-{time.monotonic_ns()}"
    loop = pair.loop(stop_file, 120)
    try:
        time.sleep(1.0)  # answers before the failover (the loop's own pace; no timing is asserted on it)
        trigger = time.time()
        if how == "stop":
            pair.stop(master)
        else:
            pair.kill(master)
        wait_until(lambda: pair.nodes[backup].vrrp() == "MASTER", 30, 0.05, f"{backup} to become master")
        window = (trigger, time.time() + WINDOW_AFTER)
        time.sleep(2.0)
    finally:
        stop_file.touch()
        out, _ = loop.communicate(timeout=60)
    records = json.loads(out)
    (gap,), outside = gaps(records, [window])
    if outside:
        print(describe(records, [window], outside))
    return gap, outside, master, backup


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_failover_moves_the_vip_within_a_second_and_keeps_persistence(pair: Pair, how: str, tmp_path: Path):
    master = _both_up(pair)
    backup = pair.other(master)
    # three clients, held by source-IP persistence; the backup's table learns them over HAProxy's peers
    held = {source: pair.request(source)["server"] for source in CLIENTS}
    assert set(held.values()) == {"rs1", "rs2"}, held
    wait_until(lambda: _stick_entries(pair, backup) >= len(CLIENTS), 30, 0.1, "the backup's stick table to hold the clients")

    gap, outside, old, new = _failover_with_loop(pair, how, tmp_path)
    print(f"\nfailover by {how} of {old}: gap {gap * 1000:.0f} ms")
    assert pair.holders() == [new]
    assert not outside, f"requests failed outside the failover: {outside[:5]}"  # printed above with their times
    assert gap < GAP_BOUND, f"the client saw {gap:.3f}s without an answer"
    # asked in reverse order: a fresh round robin would hand them other real servers
    after = {source: pair.request(source)["server"] for source in reversed(CLIENTS)}
    assert after == held
    if how == "kill":
        pair.revive(old)
    _both_up(pair)


def test_a_master_whose_haproxy_is_gone_hands_the_vip_over(pair: Pair):
    """keepalived tracks HAProxy: with no controller to restart it (killed first), a dead HAProxy means FAULT."""
    master = _both_up(pair)
    backup = pair.other(master)
    node = pair.nodes[master]
    os.kill(node.proc.pid, signal.SIGKILL)
    node.proc.wait(30)
    haproxy = read_pidfile(node.paths.haproxy_pid)
    for pid in [haproxy, *children(haproxy)]:
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: pair.holders() == [backup] and pair.nodes[backup].vrrp() == "MASTER", 30, 0.05,
               f"{backup} to hold the VIP as master")  # fmt: skip
    assert pair.request()["ok"]
    # the appliance comes back: it adopts its keepalived, starts HAProxy, and the node is a backup again
    pair.start(master)
    wait_until(lambda: pair.nodes[master].vrrp() == "BACKUP", 30, 0.1, f"{master} to be backup again")
    reasons = [t["reason"] for t in pair.nodes[master].ha_status()["transitions"]]
    assert any("HAProxy is not running" in r for r in reasons), reasons
    assert pair.holders() == [backup]


def test_change_on_primary_reaches_secondary_within_2s_and_secondary_refuses(pair: Pair):
    _both_up(pair)
    primary, secondary = pair.nodes["lb1"], pair.nodes["lb2"]
    done = _pacslb("server", "weight", "web", "rs2", "37", "--state-dir", str(primary.state), "-m", "HA sync test")
    assert done.returncode == 0, done.stdout + done.stderr
    applied_at = time.monotonic()
    rev = primary.api("GET", "/revisions").json()["current"]

    def secondary_runs_it() -> bool:
        status = secondary.api("GET", "/status").json()
        weights = {rs["name"]: rs.get("weight") for vs in status["virtual_services"] for rs in vs["real_servers"]}
        synced = (secondary.ha_status() or {}).get("node", {}).get("synced") or {}
        return weights.get("rs2") == 37 and synced.get("primary_revision") == rev

    try:
        wait_until(secondary_runs_it, 10, 0.05, "the secondary to run the primary's revision")
    except AssertionError:
        print(json.dumps({"primary": primary.ha_status(), "secondary": secondary.ha_status()}, indent=1)[:6000])
        print(secondary.log.read_text()[-3000:])
        raise
    took = time.monotonic() - applied_at
    print(f"\nrevision {rev} of the primary ran on the secondary {took * 1000:.0f} ms after the primary applied it")
    assert took < 2.0
    latest = secondary.api("GET", "/revisions?limit=1").json()["revisions"][0]
    assert latest["kind"] == "sync" and f"revision {rev} of the primary" in latest["message"]

    refused = _pacslb("server", "drain", "web", "rs1", "--state-dir", str(secondary.state))
    assert refused.returncode == 1
    assert "this node is the secondary of an HA pair: make changes on the primary 10.77.0.2" in refused.stderr
    assert "pacslb ha promote" in refused.stderr
    status = secondary.api("GET", "/status").json()
    assert all(rs["configured_state"] != "drain" for vs in status["virtual_services"] for rs in vs["real_servers"])

    shown = _pacslb("ha", "status", "--state-dir", str(secondary.state))
    assert shown.returncode == 0, shown.stderr
    assert "10.77.0.2" in shown.stdout and "MASTER" in shown.stdout and f"primary rev {rev}" in shown.stdout

    # promoted, the secondary takes changes; demoted, it takes the primary's configuration again
    assert _pacslb("ha", "promote", "--state-dir", str(secondary.state)).returncode == 0
    allowed = _pacslb("server", "weight", "web", "rs1", "55", "--state-dir", str(secondary.state))
    assert allowed.returncode == 0, allowed.stderr
    assert _pacslb("ha", "demote", "--state-dir", str(secondary.state)).returncode == 0

    def back_in_step() -> bool:
        status = secondary.api("GET", "/status").json()
        return {rs["name"]: rs.get("weight") for vs in status["virtual_services"] for rs in vs["real_servers"]}.get("rs1") == 100

    wait_until(back_in_step, 10, 0.1, "the demoted secondary to take the primary's configuration again")
    assert _pacslb("server", "weight", "web", "rs2", "100", "--state-dir", str(primary.state)).returncode == 0


def test_cut_and_restored_peer_link_ends_with_exactly_one_master(pair: Pair):
    _both_up(pair)
    pair.cut_peer_link()
    try:
        wait_until(lambda: all(n.vrrp() == "MASTER" for n in pair.nodes.values()), 30, 0.1, "both nodes to claim master")
        # A cut lasts: both stay master past one sync interval (1 s). A split brain shorter than two adverts
        # is not told from a handover (docs/high-availability.md), so the scenario must last longer than that.
        time.sleep(1.5)
        assert all(n.vrrp() == "MASTER" for n in pair.nodes.values())
    finally:
        pair.restore_peer_link()
    master = pair.wait_one_master()
    assert master == "lb1"  # split_brain: primary-wins (the default)
    wait_until(lambda: (pair.nodes["lb1"].ha_status() or {}).get("split_brain") is not None
               or (pair.nodes["lb2"].ha_status() or {}).get("split_brain") is not None, 10, 0.1,
               "the split brain to be recorded")  # fmt: skip
    shown = {n: pair.nodes[n].ha_status() for n in pair.nodes}
    recorded = [s for s in shown.values() if s and s["split_brain"]]
    assert recorded and recorded[0]["split_brain"]["rule"] == "primary-wins"
    # the winner's gratuitous ARPs (garp_lower_prio_repeat) bring back a client that followed the loser's
    started = time.monotonic()
    wait_until(lambda: pair.request()["ok"], 10, 0.1, "the client to reach the VIP on the winner")
    print(f"\nafter the split brain the client reached the VIP again in {time.monotonic() - started:.2f}s")


def test_ten_failovers_under_load(pair: Pair, tmp_path: Path):
    """Graceful and hard failovers alternate; no request fails outside the gaps."""
    _both_up(pair)
    stop_file = tmp_path / "stop"
    loop = pair.loop(stop_file, 900)
    windows: list[tuple[float, float]] = []
    try:
        time.sleep(1.0)
        for i in range(10):
            master = pair.wait_one_master()
            backup = pair.other(master)
            wait_until(lambda backup=backup: pair.nodes[backup].vrrp() == "BACKUP", 30, 0.1, "a backup")
            trigger = time.time()
            if i % 2 == 0:
                pair.stop(master)
            else:
                pair.kill(master)
            wait_until(lambda backup=backup: pair.nodes[backup].vrrp() == "MASTER", 30, 0.05, f"{backup} to take over")
            windows.append((trigger, time.time() + WINDOW_AFTER))
            time.sleep(1.0)
            if i % 2 == 0:
                pair.start(master)
            else:
                pair.revive(master)
    finally:
        stop_file.touch()
        out, _ = loop.communicate(timeout=60)
    records = json.loads(out)
    found, outside = gaps(records, windows)
    print(f"\n10 failovers: gaps (ms) {[round(g * 1000) for g in found]}; requests {len(records)}, "
          f"failed {sum(1 for r in records if not r[2])}")  # fmt: skip
    assert not outside, f"requests failed outside the failovers: {describe(records, windows, outside)}"
    assert max(found) < GAP_BOUND


def test_a_new_floating_ip_reloads_keepalived_on_both_nodes_without_moving_the_vip(pair: Pair, tmp_path: Path):
    master = _both_up(pair)
    primary = pair.nodes["lb1"]
    text = primary.config.read_text()
    changed = primary.config.with_name("lb1-more.yaml")  # beside the first: its peer certificate is in an allowed folder
    changed.write_text(text.replace("      - {address: 10.77.0.10, port: 8080}\n",
                                    "      - {address: 10.77.0.10, port: 8080}\n      - {address: 10.77.0.20, port: 8080}\n"))  # fmt: skip
    stop_file = tmp_path / "stop"
    loop = pair.loop(stop_file, 120)
    try:
        done = _pacslb("apply", "-c", str(changed), "--state-dir", str(primary.state))
        assert done.returncode == 0, done.stdout + done.stderr
        for node in pair.nodes.values():
            conf = node.state / "keepalived" / "keepalived.conf"
            wait_until(lambda conf=conf: "10.77.0.20/32 dev l0" in conf.read_text(), 10, 0.05, f"{node.name}'s keepalived.conf")
        wait_until(lambda: "10.77.0.20/32" in pair.lab.sh(pair.nodes[master].ns, "ip -4 addr show dev l0"), 10, 0.05,
                   "the new floating IP on the master")  # fmt: skip
        time.sleep(1.0)
    finally:
        stop_file.touch()
        out, _ = loop.communicate(timeout=60)
    records = json.loads(out)
    assert records and all(r[2] for r in records), [r for r in records if not r[2]][:5]
    assert pair.master() == master and pair.holders() == [master]
    restored = _pacslb("apply", "-c", str(primary.config), "--state-dir", str(primary.state))
    assert restored.returncode == 0, restored.stdout + restored.stderr


def test_split_brain_keep_current_leaves_the_vip_with_the_node_that_held_it(pair: Pair):
    """With `split_brain: keep-current` the secondary, master before the cut, stays master after it."""
    for node in pair.nodes.values():
        node.config.write_text(node.config.read_text() + "  split_brain: keep-current\n")

    def restart(name: str) -> None:
        pair.stop(name)
        pair.start(name)

    master = _both_up(pair)
    restart(pair.other(master))  # the backup first: then the master, whose stop hands the VIP over
    restart(master)
    if pair.wait_one_master() != "lb2":
        restart("lb1")
    assert pair.wait_one_master() == "lb2"
    bonus = pair.nodes["lb2"].state / "keepalived" / "split-brain-bonus"
    wait_until(lambda: bonus.read_text().strip() == "100", 30, 0.1, "lb2's split-brain bonus (it sees lb1 as backup)")
    pair.cut_peer_link()
    try:
        wait_until(lambda: all(n.vrrp() == "MASTER" for n in pair.nodes.values()), 30, 0.1, "both nodes to claim master")
        # As in the test above: a split brain shorter than two adverts is not told from a handover, so the cut
        # must last past one sync interval (1 s) to be recorded; restored at once it was missed in 1 CI run of 4.
        time.sleep(1.5)
    finally:
        pair.restore_peer_link()
    assert pair.wait_one_master() == "lb2"
    wait_until(lambda: any((n.ha_status() or {}).get("split_brain") for n in pair.nodes.values()), 10, 0.1,
               "the split brain to be recorded")  # fmt: skip
    recorded = [s["split_brain"] for s in (n.ha_status() for n in pair.nodes.values()) if s and s["split_brain"]]
    assert recorded[0]["rule"] == "keep-current"
