"""The cluster on the management API and the WebUI, in-process (tests/web/conftest.py): GET /api/v1/cluster and
/cluster show every node, its address, health, the revision it runs and whether it is drained; operators drain and
return nodes, viewers read. The cluster's etcd is an in-memory stand-in here (the real one: tests/e2e)."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

from pacslb.api.app import create_management_app
from pacslb.api.auth import AuthService
from pacslb.cluster.keys import Keys
from pacslb.model import load_text
from pacslb.paths import StatePaths
from pacslb.store.audit import AuditLog
from pacslb.store.users import UserStore
from pacslb.web import mount_web

from .conftest import CONFIG, PASSWORD, StandInAppliance

CLUSTER = """
cluster:
  name: truepacs
  node: lb1
  nodes: [{name: lb1, address: 10.0.1.11}, {name: lb2, address: 10.0.1.12}, {name: lb3, address: 10.0.1.13}]
  bgp: {local_as: 65010, neighbors: [{address: 10.0.1.1, remote_as: 65000}]}
"""


class Etcd:
    """The few calls the status and drain make, on a dictionary."""

    endpoints = ["http://10.0.1.11:2379"]

    def __init__(self) -> None:
        self.kv: dict[str, bytes] = {}

    async def get(self, key):
        return self.kv.get(key), 1

    async def get_prefix(self, prefix):
        return {k: v for k, v in self.kv.items() if k.startswith(prefix)}, 1

    async def put(self, key, value, lease=None):
        self.kv[key] = value.encode()

    async def delete(self, key):
        self.kv.pop(key, None)


@pytest.fixture
def cluster_client(tmp_path):
    text = CONFIG + CLUSTER
    loaded = load_text(text)
    assert loaded.ok, loaded.problems
    (tmp_path / "pacslb.yaml").write_text(text)
    state = tmp_path / "state"
    (state / "haproxy").mkdir(parents=True)
    appliance = StandInAppliance(StatePaths(state), tmp_path / "pacslb.yaml", loaded.config)
    etcd = Etcd()
    keys = Keys("truepacs")
    etcd.kv[keys.revision] = b"4"
    for name, revision in (("lb1", 4), ("lb2", 3)):  # lb3 is offline: no member key
        sessions = {
            "bgp": [
                {
                    "neighbor": "10.0.1.1",
                    "established": name == "lb1",
                    "state": "Established" if name == "lb1" else "Active  Socket: Connection refused",
                }
            ],
            "bfd": [{"address": "10.0.1.1", "state": "Up"}],
        }
        etcd.kv[keys.member(name)] = json.dumps({"name": name, "healthy": True, "revision": revision, "at": 1.0,
                                                 "vips": ["192.0.2.10"] if name == "lb1" else None,
                                                 "sessions": sessions}).encode()  # fmt: skip
    appliance.cluster.cluster, appliance.cluster.keys, appliance.cluster.client = loaded.config.cluster, keys, etcd
    auth = AuthService(UserStore(state / "users.sqlite"), AuditLog(state / "audit.sqlite"))
    auth.users.add("viewer", PASSWORD, "viewer")
    auth.users.add("operator", PASSWORD, "operator")
    app = create_management_app(appliance.facade, auth)
    mount_web(app)

    def login(role: str) -> TestClient:
        client = TestClient(app, base_url="https://testserver")
        assert client.post("/login", data={"username": role, "password": PASSWORD}, follow_redirects=False).status_code == 303
        return client

    yield login, etcd, keys, appliance


def test_the_api_and_the_page_show_every_node(cluster_client):
    login, _, _, _ = cluster_client
    viewer = login("viewer")
    body = viewer.get("/api/v1/cluster").json()
    assert body["configured"] and body["latest_revision"] == 4 and body["node"] == "lb1"
    assert [(n["name"], n["online"], n["revision"]) for n in body["nodes"]] == [("lb1", True, 4), ("lb2", True, 3),
                                                                               ("lb3", False, None)]  # fmt: skip
    html = viewer.get("/cluster").text
    assert 'href="/cluster"' in html and 'href="/api/v1/cluster"' in html  # the nav entry and the JSON alternate
    assert "10.0.1.12" in html and "192.0.2.10" in html and "offline" in html
    assert body["nodes"][1]["sessions"]["bgp"][0]["established"] is False  # lb2's router does not hear it
    assert '<span class="badge st-up" title="Established">BGP 10.0.1.1</span>' in html
    assert '<span class="badge st-down" title="Active  Socket: Connection refused">BGP 10.0.1.1</span>' in html
    assert "Drain</button>" not in html  # a viewer reads only
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html)[1]
    denied = viewer.post("/api/v1/cluster/nodes/lb2/drain", headers={"X-CSRF-Token": csrf})
    assert denied.status_code == 403 and "operator" in denied.text


def test_an_operator_drains_and_returns_a_node(cluster_client):
    login, etcd, keys, _ = cluster_client
    operator = login("operator")
    page = operator.get("/cluster").text
    assert "Drain</button>" in page
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
    answer = operator.post("/cluster/nodes/lb2/drain", data={"csrf_token": csrf})
    assert answer.status_code == 200 and "node lb2 drained" in answer.text  # after the redirect: the flash
    assert keys.drain("lb2") in etcd.kv
    assert [n["drained"] for n in operator.get("/api/v1/cluster").json()["nodes"]] == [False, True, False]
    header = {"X-CSRF-Token": csrf}
    assert operator.post("/api/v1/cluster/nodes/lb2/undrain", headers=header).json()["drained"] is False
    assert keys.drain("lb2") not in etcd.kv
    missing = operator.post("/api/v1/cluster/nodes/lb9/drain", headers=header)
    assert missing.status_code == 404 and missing.json()["outcome"] == "not-found"


def test_a_node_cut_off_from_the_others_says_so(cluster_client):
    login, _, _, appliance = cluster_client
    viewer = login("viewer")
    assert "cut off" not in viewer.get("/cluster").text
    appliance.cluster.partition = "partitioned: etcd's quorum out of reach for 5s or more, and this node reaches 0 of the 2"
    assert viewer.get("/api/v1/cluster").json()["partition"].startswith("partitioned:")
    html = viewer.get("/cluster").text
    assert "cut off" in html and "reaches 0 of the 2" in html


def test_without_a_cluster_section_the_page_says_so(web):
    client = web("viewer")
    assert "not a cluster node" in client.get("/cluster").text
    assert client.get("/api/v1/cluster").json() == {"configured": False}
