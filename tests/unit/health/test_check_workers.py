"""Check workers without processes: the sharding (stable, few moves), the message protocol, the worker's
reports, the controller's side of the states, and the model's `settings.health.workers`."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from pacslb.health.base import Result, Target
from pacslb.health.probes import AMQPProbe, ConnectProbe, DicomEchoProbe, ExternalProbe, HL7Probe, HTTPProbe
from pacslb.health.runner import Watch
from pacslb.health.shards import AUTO_WORKERS_FROM_RATE, assign, shard_of, worker_count
from pacslb.health.worker import Reporter
from pacslb.health.worker_protocol import (
    MAX_REASON,
    MAX_STATE_LINE,
    ProtocolError,
    State,
    decode_probe,
    decode_state,
    decode_watches,
    encode_probe,
    encode_state,
    encode_watches,
    state_of,
)
from pacslb.health.workers import Seen, Worker, WorkerPool
from pacslb.model import load_text

KEYS = [(f"svc{i // 10}", f"rs{i % 10}") for i in range(3000)]


# --- sharding ----------------------------------------------------------------------------------------


def test_worker_count_auto_is_the_cpus_and_a_number_is_itself() -> None:
    assert worker_count("auto", cpus=2) == 2 and worker_count("auto", cpus=1) == 1
    assert worker_count(1, cpus=8) == 1 and worker_count(3, cpus=2) == 3
    assert worker_count("auto") >= 1  # this machine's affinity mask
    # auto keeps a light load in the controller: workers only from AUTO_WORKERS_FROM_RATE checks a second
    assert worker_count("auto", cpus=2, rate=AUTO_WORKERS_FROM_RATE - 1) == 1
    assert worker_count("auto", cpus=2, rate=AUTO_WORKERS_FROM_RATE) == 2
    assert worker_count(2, cpus=2, rate=10) == 2  # a number is taken as it is


def test_the_assignment_is_stable_and_depends_on_the_key_only() -> None:
    first = [shard_of(k, 4) for k in KEYS]
    assert first == [shard_of(k, 4) for k in KEYS]  # the same on every call (no per-process hash salt)
    alone = {k: shard_of(k, 4) for k in KEYS[:10]}
    shards = assign(KEYS[:10], 4, key=lambda k: k)
    assert {k: i for i, shard in enumerate(shards) for k in shard} == alone  # others' presence changes nothing
    assert all(shard_of(k, 1) == 0 for k in KEYS[:50])
    with pytest.raises(ValueError, match="at least 1"):
        shard_of(KEYS[0], 0)


def test_the_shards_are_balanced() -> None:
    for workers in (2, 3, 4):
        sizes = Counter(shard_of(k, workers) for k in KEYS)
        assert set(sizes) == set(range(workers))
        assert max(sizes.values()) < 1.15 * len(KEYS) / workers, sizes


def test_adding_or_removing_watches_moves_no_other_watch() -> None:
    before = {k: shard_of(k, 2) for k in KEYS[:2000]}
    after = {k: i for i, shard in enumerate(assign(KEYS[500:], 2, key=lambda k: k)) for k in shard}
    assert all(after[k] == before[k] for k in KEYS[500:2000])


@pytest.mark.parametrize("old, new", [(2, 3), (3, 2), (3, 4), (4, 8), (8, 7)])
def test_a_change_of_the_worker_count_moves_only_what_it_must(old: int, new: int) -> None:
    moved = [(shard_of(k, old), shard_of(k, new)) for k in KEYS if shard_of(k, old) != shard_of(k, new)]
    if new > old:  # only the watches the new workers win, and only to them
        assert all(to >= old for _, to in moved)
        expected = len(KEYS) * (new - old) / new
    else:  # only the watches of the workers that go
        assert all(frm >= new for frm, _ in moved)
        expected = len(KEYS) * (old - new) / old
    assert abs(len(moved) - expected) < 0.2 * expected, (len(moved), expected)


# --- the protocol ------------------------------------------------------------------------------------

PROBES = [
    ConnectProbe(2.0),
    HTTPProbe(3.0, tls=True, method="HEAD", path="/health", host="pacs", expect_status=(200, 204), expect_body="OK"),
    DicomEchoProbe(5.0, calling_ae="LB", called_ae="ARCHIVE"),
    HL7Probe(4.0, segments=("MSH|^~\\&|A|B|C|D|||NMQ^N01|1|P|2.5", "NCK|20260101")),
    AMQPProbe(2.0, virtual_host="/pacs", username="lb", password="s3cret"),
    ExternalProbe(9.0, script="/etc/pacslb/check.sh", vip="192.0.2.1", vip_port=104),
]


def test_every_probe_kind_goes_through_unchanged() -> None:
    for probe in PROBES:
        back = decode_probe(json.loads(json.dumps(encode_probe(probe))))
        assert back == probe and type(back) is type(probe)  # tuples stay tuples: Checker.replace compares probes


def test_a_shard_goes_through_with_shared_probes_sent_once() -> None:
    shared = PROBES[2]
    watches = [Watch(("dicom", f"a{i}"), Target("192.0.2.10", 11112 + i), shared, 5.0, 2, 3) for i in range(3)]
    watches.append(Watch(("hl7", "e1"), Target("::1", 2575), PROBES[3], 0.5, 1, 1))
    line = encode_watches(7, watches)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert len(json.loads(line)["probes"]) == 2
    gen, back = decode_watches(line)
    assert gen == 7
    assert [(w.key, w.target, w.probe, w.interval, w.rise, w.fall) for w in back] == [
        (w.key, w.target, w.probe, w.interval, w.rise, w.fall) for w in watches
    ]
    assert all(not w.decided for w in back)


@pytest.mark.parametrize(
    "message, error",
    [
        (b"not json\n", "not JSON"),
        (b"[1]\n", "a JSON object"),
        (b'{"op": "state", "gen": 1}\n', "expected"),
        (b'{"op": "watch", "gen": -1, "probes": [], "watches": []}\n', "expected"),
        (b'{"op": "watch", "gen": 1, "probes": [{"kind": "os.system", "fields": {}}], "watches": []}\n', "unknown probe"),
        (b'{"op": "watch", "gen": 1, "probes": [{"kind": "ConnectProbe", "fields": {"x": 1}}], "watches": []}\n', "bad fields"),
        (b'{"op": "watch", "gen": 1, "probes": [], "watches": [["s", "r", "a", 1, 0, 1, 1, 1]]}\n', "probe, rise and fall"),
        (b'{"op": "watch", "gen": 1, "probes": [{"kind": "ConnectProbe", "fields": {"timeout": 1}}],'
         b' "watches": [["s", "r", "a", 70000, 0, 1, 1, 1]]}\n', "port"),
        (b'{"op": "watch", "gen": 1, "probes": [{"kind": "ConnectProbe", "fields": {"timeout": 1}}],'
         b' "watches": [["s", "r", "a", 80, 0, 0, 1, 1]]}\n', "interval"),
        (b'{"op": "watch", "gen": 1, "probes": [], "watches": [["s", "r"]]}\n', "a watch is"),
    ],
)  # fmt: skip
def test_bad_watch_messages_are_refused_with_what_is_wrong(message: bytes, error: str) -> None:
    with pytest.raises(ProtocolError, match=error):
        decode_watches(message)


def test_a_state_goes_through_and_is_checked_field_by_field() -> None:
    state = State(3, ("dicom", "a1"), True, False, False, "association rejected", 1765100000.5, True)
    assert decode_state(encode_state(state)) == state
    fresh = State(0, ("s", "r"), False, True, None, None, None, False)
    assert decode_state(encode_state(fresh)) == fresh
    good = json.loads(encode_state(state))
    for field, bad in [("key", ["a"]), ("key", [1, 2]), ("up", 1), ("decided", "yes"), ("passed", 0), ("gen", True),
                       ("reason", "x" * (MAX_REASON + 1)), ("changed_at", "now"), ("op", "watch")]:  # fmt: skip
        with pytest.raises(ProtocolError):
            decode_state(json.dumps({**good, field: bad}).encode())
    with pytest.raises(ProtocolError, match="longer|more than"):
        decode_state(b'{"op": "state", "reason": "' + b"x" * MAX_STATE_LINE + b'"}')


def test_a_long_reason_is_cut_to_the_bound() -> None:
    w = Watch(("s", "r"), Target("127.0.0.1", 1), PROBES[0], 1, 1, 1)
    w.record(Result(False, "y" * 5000))
    state = state_of(1, w, True)
    assert len(state.reason) == MAX_REASON and decode_state(encode_state(state)).reason == state.reason


# --- the worker's reports and the controller's side ---------------------------------------------------


def test_the_worker_reports_changes_of_what_is_shown_not_every_check() -> None:
    sent: list[bytes] = []
    reporter = Reporter(sent.append)
    w = Watch(("s", "r"), Target("127.0.0.1", 1), PROBES[0], 1, rise=2, fall=2)
    for result in [Result(True, "connected")] * 4:
        reporter.checked(w, w.record(result))
    assert [decode_state(x).decided for x in sent] == [False, True]  # the first check, then decided; no more
    reporter.checked(w, w.record(Result(False, "refused")))
    reporter.checked(w, w.record(Result(False, "refused")))
    states = [decode_state(x) for x in sent]
    assert [(s.up, s.passed, s.changed) for s in states[2:]] == [(True, False, False), (False, False, True)]
    replaced = Watch(("s", "r"), Target("127.0.0.1", 2), PROBES[0], 1, rise=1, fall=1)
    reporter.gen = 2
    reporter.keep({replaced.key: replaced})
    reporter.checked(replaced, replaced.record(Result(False, "refused")))  # same shown values, but a new watch
    assert decode_state(sent[-1]).gen == 2 and len(sent) == 5


async def test_the_controller_takes_states_of_the_current_spec_from_its_worker_only() -> None:
    pushed: list[tuple] = []

    async def push(key, up) -> None:
        pushed.append((key, up))

    pool = WorkerPool(push)
    mine, other = Worker(0), Worker(1)
    pool.seen[("s", "r")] = Seen(mine, since=3)
    pool._apply(mine, State(2, ("s", "r"), True, False, False, "old spec", 1.0, True))  # sent before its new spec
    pool._apply(other, State(5, ("s", "r"), True, False, False, "not its watch", 1.0, True))
    pool._apply(mine, State(3, ("x", "y"), True, False, False, "not watched", 1.0, True))
    assert not pool.seen[("s", "r")].decided and pushed == []
    pool._apply(mine, State(3, ("s", "r"), True, False, False, "refused", 2.0, True))
    seen = pool.seen[("s", "r")]
    assert (seen.decided, seen.up, seen.last, seen.changed_at) == (True, False, Result(False, "refused"), 2.0)
    await pool.close()  # the push task ran or was cancelled with the pool
    assert pushed in ([], [(("s", "r"), False)])


async def test_pool_replace_keeps_unchanged_watches_and_resets_changed_or_moved_ones() -> None:
    pool = WorkerPool(lambda key, up: None, command=["/bin/false"])  # never started: the supervisors are stopped first
    try:
        watches = [Watch(k, Target("127.0.0.1", 1000 + i), PROBES[0], 1, 1, 1) for i, k in enumerate(KEYS[:40])]
        pool.replace(watches, 2)
        for seen in pool.seen.values():
            seen.decided = True
        gens = [w.gen for w in pool.workers]
        pool.replace(watches, 2)  # the same: no message, no reset
        assert [w.gen for w in pool.workers] == gens and all(s.decided for s in pool.seen.values())
        changed = watches[0]
        watches[0] = Watch(changed.key, Target("127.0.0.1", 9), PROBES[0], 1, 1, 1)
        pool.replace(watches[:30], 3)
        assert set(pool.seen) == set(KEYS[:30])
        for key in KEYS[1:30]:
            moved = shard_of(key, 3) != shard_of(key, 2)
            assert pool.seen[key].decided is not moved  # kept where it stayed, undecided where it moved
        assert not pool.seen[changed.key].decided
        assert sum(len(w.specs) for w in pool.workers) == 30 and len(pool.workers) == 3
    finally:
        for worker in pool.workers:  # no process was started: stop the supervisors before they try
            worker.retired = True
        await pool.close()


# --- the model -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 65, "many", "2", True, 1.5])
def test_workers_out_of_bounds_are_refused_naming_the_field(value) -> None:
    loaded = load_text(f"version: 1\nsettings: {{health: {{workers: {json.dumps(value)}}}}}\nvirtual_services: []\n")
    assert not loaded.ok
    assert [str(p) for p in loaded.problems] == [
        f"settings.health.workers: must be 'auto' or a whole number from 1 to 64 (processes that run the checks), not {value!r}"
    ]


@pytest.mark.parametrize("value, expected", [(None, "auto"), ('"auto"', "auto"), ("1", 1), ("64", 64)])
def test_workers_default_to_auto(value, expected) -> None:
    health = "{}" if value is None else f"{{workers: {value}}}"
    loaded = load_text(f"version: 1\nsettings: {{health: {health}}}\nvirtual_services: []\n")
    assert loaded.ok and loaded.config.settings.health.workers == expected


# --- status ------------------------------------------------------------------------------------------------


def test_status_shows_each_worker_and_its_restarts(capsys) -> None:
    from pacslb.cli.run_commands import _print_table
    from pacslb.controller.status import ApplianceStatus, ControllerStatus, EngineStatus
    from pacslb.paths import StatePaths

    workers = [
        {"index": 0, "pid": 4242, "real_servers": 1500, "restarts": 0, "last_exit": None},
        {"index": 1, "pid": None, "real_servers": 1499, "restarts": 2, "last_exit": "(PID 77) was killed by signal 9"},
    ]
    controller = ControllerStatus(pid=9, state_dir="/s", check_workers=workers)
    status = ApplianceStatus.model_validate_json(
        ApplianceStatus(controller=controller, engine=EngineStatus(running=False), virtual_services=[]).model_dump_json()
    )  # through JSON, as `pacslb status` receives it
    _print_table(status, StatePaths(Path("/s")))
    out = capsys.readouterr().out
    assert "check worker 0: PID 4242, 1500 real servers\n" in out
    assert "check worker 1: PID -, 1499 real servers, restarted 2x (last: (PID 77) was killed by signal 9)" in out
