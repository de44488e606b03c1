"""`pacslb cluster rejoin` (cluster/members.py) against the real etcd on loopback: three members (three engines, three
state directories) form one cluster; a key is written; member c is stopped and its data directory wiped; the rejoin
through a and b (over plain HTTP, and over TLS with the cluster CA's certificates) removes c's old member, adds it again and starts c on an empty data directory with
`initial-cluster-state: existing`: c is a started member again (a new ID), the key written before is read through c
alone, and its file says `new` again without a restart. Before the rejoin, c's engine started as it is finds etcd
refusing the lost member and waits for the rejoin without failing (a controller starts without it). Refused, with nothing changed: c's member while it is
healthy, the other members without quorum (b stopped too), and a node that is no etcd member."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
import yaml

from pacslb.cluster import members
from pacslb.cluster.etcd import EtcdClient, EtcdError
from pacslb.cluster.pki import write_cluster_pki
from pacslb.engines.etcd import process
from pacslb.engines.etcd.engine import EtcdEngine
from pacslb.engines.etcd.render import TLSFiles, client_urls, tls_files
from pacslb.model import validate_data
from pacslb.paths import StatePaths
from support.net import free_port, loopback_host
from support.processes import kill_pids

pytestmark = [pytest.mark.engine]

NAMES = ("a", "b", "c")


def _config(node: str, addresses: dict[str, str], client_port: int, peer_port: int, clients_only: tuple[str, ...] = (),
            tls: bool = False, base_dir: Path | None = None):  # fmt: skip
    nodes = [{"name": n, "address": addresses[n]} for n in NAMES]
    nodes += [{"name": n, "address": addresses[n], "etcd_member": False} for n in clients_only]
    etcd: dict = {"client_port": client_port, "peer_port": peer_port}
    if tls:
        etcd["tls"] = {"ca": f"pki/{node}/ca.pem", "cert": f"pki/{node}/etcd.pem", "key": f"pki/{node}/etcd.key"}
    data = {"version": 1, "cluster": {
        "name": "rejoin", "node": node, "nodes": nodes, "etcd": etcd,
        "bgp": {"local_as": 65010, "neighbors": [{"address": loopback_host(250), "remote_as": 65000}]}}}  # fmt: skip
    loaded = validate_data(data, base_dir)  # with base_dir: the TLS files are checked too
    assert loaded.ok, loaded.problems
    return loaded.config


@pytest.fixture(params=[False, True], ids=["http", "tls"])
def bed(tmp_path: Path, request):
    if shutil.which("etcd") is None:
        pytest.fail("etcd is not installed: `make deps` installs Debian's etcd-server")
    tls = request.param
    addresses = {n: loopback_host(231 + i) for i, n in enumerate((*NAMES, "d"))}
    client_port, peer_port = free_port(addresses["a"]), free_port(addresses["a"])
    if tls:  # what `pacslb cluster pki init --also a=127.0.0.1 ...` writes (on lo every connection is from 127.0.0.1)
        structure = _config("a", addresses, client_port, peer_port, tls=True)
        write_cluster_pki(structure.cluster, tmp_path / "pki", extra={n: ("127.0.0.1",) for n in NAMES})
    configs = {n: _config(n, addresses, client_port, peer_port, tls=tls, base_dir=tmp_path if tls else None) for n in NAMES}
    states = {n: StatePaths(tmp_path / f"state-{n}") for n in NAMES}
    for paths in states.values():
        paths.root.mkdir(mode=0o750)
    engines = {n: EtcdEngine(states[n], asyncio.Lock()) for n in NAMES}
    yield addresses, client_port, peer_port, configs, states, engines, tmp_path
    # teardown, also after a failure: every member still running, by its PID
    pids = [process.adopt(process.Files(paths.etcd_dir)) for paths in states.values()]
    kill_pids([pid for pid in pids if pid is not None])


async def _read_through(url: str, key: str, tls: TLSFiles | None) -> bytes | None:
    client = EtcdClient([url], timeout=5, tls=tls)
    try:
        value, _ = await client.get(key)  # linearizable: answers only a member in the cluster's quorum, caught up
        return value
    finally:
        await client.close()


async def test_a_member_whose_data_was_wiped_rejoins_and_reads_what_was_written_before(bed) -> None:
    addresses, client_port, peer_port, configs, states, engines, base_dir = bed
    c = configs["c"].cluster
    tls = {n: tls_files(configs[n].cluster, base_dir) for n in NAMES}  # None without TLS
    urls = {n: client_urls(configs[n].cluster)[0] for n in NAMES}  # each node's own member first
    await asyncio.gather(*(engines[n].start(configs[n], base_dir) for n in NAMES))
    client = EtcdClient(list(urls.values()), timeout=5, tls=tls["a"])
    try:
        for _ in range(100):  # the first write waits for a leader
            try:
                await client.put("/before", "the study's route")
                break
            except EtcdError:
                await asyncio.sleep(0.1)
        listed = await client.member_list()
        old_c = members.find_own(listed, "c", members.peer_url(c, "c"))
        assert old_c is not None and old_c.get("name") == "c"

        # refused while c's member is healthy (nothing to rejoin), and for a node that is no etcd member
        code, answer = await members.rejoin(c, engines["c"], tls["c"])
        assert code == 409 and "healthy" in answer["message"], answer
        outsider = _config("d", addresses, client_port, peer_port, clients_only=("d",))  # no TLS: refused before it
        code, answer = await members.rejoin(outsider.cluster, engines["c"], None)
        assert code == 409 and "no etcd member" in answer["message"], answer

        # c's member stops and its data directory is lost
        await engines["c"].stop_member()
        shutil.rmtree(states["c"].etcd_dir / "data")
        # started again as it is (a controller's start): etcd refuses, the others still count c's member; the engine
        # says so and does not fail the controller's start, and a change does not try to start it again
        await engines["c"].start(configs["c"], base_dir)
        assert engines["c"].needs_rejoin and engines["c"].pid is None and "pacslb cluster rejoin" in engines["c"].error
        assert not engines["c"].plan(configs["c"], configs["c"], base_dir).changed

        # without the others' quorum (b stopped too) the rejoin is refused and changes nothing
        await engines["b"].stop_member()
        code, answer = await members.rejoin(c, engines["c"], tls["c"])
        assert code == 503 and "no quorum" in answer["message"], answer
        assert engines["c"].pid is None and not process.has_data(process.Files(states["c"].etcd_dir))
        await engines["b"].start_again_on_its_data()

        code, answer = await members.rejoin(c, engines["c"], tls["c"])
        assert code == 200, answer
        assert answer["removed"] == members.member_id(old_c) and answer["id"] != answer["removed"]

        # c is a started member again, and has the data: read through c alone
        assert await _read_through(urls["c"], "/before", tls["c"]) == b"the study's route"
        status, found = await members.members(client)
        assert status == 200 and [(m["name"], m["started"]) for m in found["members"]] == [(n, True) for n in NAMES]
        assert sum(m["leader"] for m in found["members"]) == 1
        assert next(m for m in found["members"] if m["name"] == "c")["id"] == answer["id"]

        assert not engines["c"].needs_rejoin and engines["c"].error is None
        # caught up: the marker is gone and the file says `new` again, as the plan renders it (no restart pending)
        files = process.Files(states["c"].etcd_dir)
        assert not files.rejoin.exists()
        assert yaml.safe_load(files.config.read_text())["initial-cluster-state"] == "new"
        assert not engines["c"].plan(configs["c"], configs["c"], base_dir).changed
        await client.put("/after", "written with c back")
        assert await _read_through(urls["c"], "/after", tls["c"]) == b"written with c back"
    finally:
        await client.close()
        for engine in engines.values():
            await engine.stop()
