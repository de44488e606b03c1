"""etcd over TLS with the cluster CA, against the real etcd on loopback: three members (three engines, three state
directories) with certificates of one cluster CA (cluster/pki.py), started from the rendered file, which must form
one cluster over https peers; the controller's client (cluster/etcd.py) with the node's certificate writes on one
member and reads on another; a client without a certificate, one with another CA's certificate, one that trusts
another CA and one that speaks plain HTTP get nothing, on the client port and on the peer port; the peer port also
refuses a certificate of the cluster CA that does not name the address the connection comes from."""

from __future__ import annotations

import asyncio
import shutil
import ssl
from pathlib import Path

import httpx
import pytest

from pacslb.cluster.etcd import EtcdClient, EtcdError, ssl_context
from pacslb.cluster.pki import issue_node, make_cluster_ca, write_cluster_pki
from pacslb.engines.etcd import process
from pacslb.engines.etcd.engine import EtcdEngine
from pacslb.engines.etcd.render import TLSFiles, client_urls, tls_files
from pacslb.model import validate_data
from pacslb.paths import StatePaths
from pacslb.pki import load_issued, write_pem
from support.net import free_port, loopback_host
from support.processes import kill_pids

pytestmark = [pytest.mark.engine]

NAMES = ("a", "b", "c")
LO = "127.0.0.1"  # the source address of every connection on lo
REFUSED = (httpx.HTTPError, ssl.SSLError)  # a refusal after the handshake reaches the client as either


def _data(node: str, addresses: dict[str, str], client_port: int, peer_port: int) -> dict:
    return {"version": 1, "cluster": {
        "name": "tls", "node": node, "nodes": [{"name": n, "address": addresses[n]} for n in NAMES],
        "etcd": {"client_port": client_port, "peer_port": peer_port,
                 "tls": {"ca": f"pki/{node}/ca.pem", "cert": f"pki/{node}/etcd.pem", "key": f"pki/{node}/etcd.key"}},
        "bgp": {"local_as": 65010, "neighbors": [{"address": loopback_host(250), "remote_as": 65000}]}}}  # fmt: skip


@pytest.fixture
def members(tmp_path: Path):
    if shutil.which("etcd") is None:
        pytest.fail("etcd is not installed: `make deps` installs Debian's etcd-server")
    addresses = {n: loopback_host(241 + i) for i, n in enumerate(NAMES)}
    client_port, peer_port = free_port(addresses["a"]), free_port(addresses["a"])
    structure = validate_data(_data("a", addresses, client_port, peer_port))  # no base_dir: the files not read yet
    assert structure.config is not None, structure.problems
    # what `pacslb cluster pki init --also a=127.0.0.1 ...` writes: on lo every connection comes from 127.0.0.1,
    # and etcd takes a peer only from an address its certificate names (on a network, the node's own)
    write_cluster_pki(structure.config.cluster, tmp_path / "pki", extra={n: (LO,) for n in NAMES})
    ca = load_issued((tmp_path / "pki" / "ca.pem").read_bytes() + (tmp_path / "pki" / "ca.key").read_bytes())
    configs = {}
    for name in NAMES:
        loaded = validate_data(_data(name, addresses, client_port, peer_port), tmp_path)  # the files checked too
        assert loaded.ok, loaded.problems
        configs[name] = loaded.config
    states = {n: StatePaths(tmp_path / f"state-{n}") for n in NAMES}
    for paths in states.values():
        paths.root.mkdir(mode=0o750)
    yield tmp_path, configs, states, ca
    # teardown, also after a failure: every member still running, by its PID
    pids = [process.adopt(process.Files(paths.etcd_dir)) for paths in states.values()]
    kill_pids([pid for pid in pids if pid is not None])


async def _refused(url: str, verify: ssl.SSLContext | bool) -> None:
    """The member closes the connection after the handshake (TLS 1.3: the client learns it on its first read, as
    httpx's error or, depending on when the member's alert arrives, as the raw `ssl.SSLError` of the alert)."""
    async with httpx.AsyncClient(verify=verify, timeout=5) as http:
        with pytest.raises(REFUSED):
            response = await http.post(url, json={"key": "L2s="})
            pytest.fail(f"{url} answered {response.status_code} {response.text[:200]}")


async def test_members_over_tls_take_the_nodes_certificates_and_refuse_every_other_client(members) -> None:
    base_dir, configs, states, ca = members
    engines = {n: EtcdEngine(states[n], asyncio.Lock()) for n in NAMES}
    for name in NAMES:  # each starts alone (no quorum yet): the three find each other over https peers
        await engines[name].start(configs[name], base_dir)
    conf = engines["a"].files.config.read_text()
    assert "client-cert-auth: true" in conf and "listen-peer-urls: 'https://" in conf

    a, b = configs["a"].cluster, configs["b"].cluster
    writer = EtcdClient(client_urls(a)[:1], timeout=10, tls=tls_files(a, base_dir))
    reader = EtcdClient(client_urls(b)[:1], timeout=10, tls=tls_files(b, base_dir))
    try:
        for _ in range(100):  # the first write waits for a leader, elected over the https peers
            try:
                await writer.put("/tls/k", "over tls")
                break
            except EtcdError:
                await asyncio.sleep(0.1)
        value, _ = await reader.get("/tls/k")  # written through a, read through b: replicated between TLS peers
        assert value == b"over tls"
    finally:
        await writer.close()
        await reader.close()

    own = tls_files(a, base_dir)
    assert own is not None
    client_url, peer_url = client_urls(a)[0] + "/v3/kv/range", client_urls(a)[0].replace(
        str(a.etcd.client_port), str(a.etcd.peer_port)) + "/members"  # fmt: skip
    trusting = ssl.create_default_context(cafile=own.ca)  # trusts the cluster CA, shows no certificate
    for url in (client_url, peer_url):
        await _refused(url, trusting)
    log = engines["a"].files.log
    assert "didn't provide a certificate" in log.read_text()  # refused for that, not for something else

    # a certificate signed by another CA, for the right address
    other = make_cluster_ca("other")
    stray = issue_node(other, "tls", a.this_node)
    (base_dir / "stray.pem").write_bytes(stray.cert_pem)
    (base_dir / "stray.key").write_bytes(stray.key_pem)
    (base_dir / "other-ca.pem").write_bytes(other.cert_pem)
    stranger = ssl.create_default_context(cafile=own.ca)
    stranger.load_cert_chain(base_dir / "stray.pem", base_dir / "stray.key")
    for url in (client_url, peer_url):
        await _refused(url, stranger)
    impostor = EtcdClient(client_urls(a)[:1], timeout=3, tls=TLSFiles(own.ca, str(base_dir / "stray.pem"),
                                                                        str(base_dir / "stray.key")))  # fmt: skip
    with pytest.raises(EtcdError, match="cannot be reached"):
        await impostor.get("/tls/k")
    await impostor.close()

    # the client refuses a member its CA did not sign (the node trusts the cluster CA alone)
    misled = EtcdClient(client_urls(a)[:1], timeout=3, tls=TLSFiles(str(base_dir / "other-ca.pem"), own.cert, own.key))
    with pytest.raises(EtcdError, match="CERTIFICATE_VERIFY_FAILED"):
        await misled.get("/tls/k")
    await misled.close()

    # plain HTTP on a TLS port gets no data
    await _refused(client_url.replace("https://", "http://"), True)

    # with the node's own certificate the peer port answers (what the other members do)...
    async with httpx.AsyncClient(verify=ssl_context(own), timeout=5) as http:
        response = await http.get(peer_url)
        assert response.status_code == 200 and {m["name"] for m in response.json()} == set(NAMES)
    # ...and a certificate of the cluster CA that does not name the address it comes from does not (etcd checks a
    # peer's source address against its certificate)
    unbound = issue_node(ca, "tls", a.this_node)  # the cluster CA's, for a's address only
    write_pem(base_dir / "unbound.pem", unbound.cert_pem)
    write_pem(base_dir / "unbound.key", unbound.key_pem)
    async with httpx.AsyncClient(verify=ssl_context(TLSFiles(own.ca, str(base_dir / "unbound.pem"),
                                                             str(base_dir / "unbound.key"))), timeout=5) as http:  # fmt: skip
        assert (await http.post(client_url, json={"key": "L2s="})).status_code == 200  # the client port does not check
        with pytest.raises(REFUSED):
            await http.get(peer_url)

    for engine in engines.values():
        await engine.stop()
