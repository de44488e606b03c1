"""One change across two real engines, in namespaces: HAProxy commits first, nftables then fails, and the
transaction sets HAProxy back; `pacslb stop` without a controller leaves no table and no HAProxy.

The appliance runs in the load balancer's namespace (conftest.py has the drawing), with a Layer 4 NAT
service and a Layer 7 TCP service on the namespace's loopback.
"""

from __future__ import annotations

import json

import pytest
import yaml
from test_layer4 import Appliance, config_data, tally  # type: ignore[import-not-found]
from test_layer4_cli import cli  # type: ignore[import-not-found]

from support.netns import Bed
from support.wait import wait_until

pytestmark = [pytest.mark.netns, pytest.mark.root]

L7_PORT, NEW_PORT = 18481, 18482


def two_engines(weights=(100, 100), l7_ports=(L7_PORT,)) -> dict:
    data = config_data("layer4-nat", weights=weights, health_check={"type": "none"})
    data["virtual_services"].append({
        "name": "tcp7", "mode": "layer7-tcp", "health_check": {"type": "none"},
        "listen": [{"address": "127.0.0.1", "port": p} for p in l7_ports],
        "real_servers": [{"name": "a", "address": "127.0.0.1", "port": 18489}],
    })  # fmt: skip
    return data


@pytest.fixture
def app(bed: Bed):
    made = Appliance(bed, two_engines())
    try:
        yield made
    finally:
        made.close()


def schedule(bed: Bed) -> str:
    return bed.lab.sh(bed.lb, "nft list map inet pacslb sched_svc")


def listening(bed: Bed, port: int) -> bool:
    return f":{port} " in bed.lab.sh(bed.lb, "ss -Hltn")


def test_nftables_failing_after_haproxy_committed_sets_haproxy_back(bed: Bed, app: Appliance) -> None:
    """HAProxy commits first (a reload for a new listener), then nftables cannot update its maps (someone
    deleted pacslb's table): the transaction reloads HAProxy on the previous file, and says that nftables
    could not be set back either."""
    assert listening(bed, L7_PORT) and not listening(bed, NEW_PORT)
    before_cfg = (app.dir / "s" / "haproxy" / "haproxy.cfg").read_text()
    revisions = json.loads(cli(app, "revisions", "--json").stdout)
    bed.lab.sh(bed.lb, "nft delete table inet pacslb")
    changed = app.dir / "changed.yaml"
    changed.write_text(yaml.safe_dump(two_engines(weights=(100, 25), l7_ports=(L7_PORT, NEW_PORT))))
    done = cli(app, "apply", "-c", str(changed))
    assert done.returncode != 0, done.stdout
    assert "previous configuration keeps serving" in done.stderr, done.stderr
    assert "nftables could not be set back" in done.stderr, done.stderr
    # HAProxy had reloaded with the new listener before nftables failed: it runs the previous file again
    assert (app.dir / "s" / "haproxy" / "haproxy.cfg").read_text() == before_cfg
    wait_until(lambda: not listening(bed, NEW_PORT), 10, what=f"HAProxy's old worker alone, without :{NEW_PORT}")
    assert listening(bed, L7_PORT)
    after = json.loads(cli(app, "revisions", "--json").stdout)
    assert after["current"] == revisions["current"]
    failed = after["revisions"][0]
    assert failed["status"] == "failed" and failed["id"] > revisions["current"]
    assert "haproxy set back to the previous configuration" in app.logs()


def test_stop_without_a_controller_leaves_no_table_and_no_haproxy(bed: Bed, app: Appliance) -> None:
    state = app.dir / "s"
    master = int((state / "haproxy" / "haproxy.pid").read_text())
    assert "table inet pacslb" in bed.lab.sh(bed.lb, "nft list tables")
    app.proc.kill()  # SIGKILL: the engines serve on without their controller (fail static)
    app.proc.wait(timeout=30)
    names, _ = tally(bed.client_run("tcp", 4))
    assert sum(names.values()) == 4
    done = cli(app, "stop")
    assert done.returncode == 0, done.stderr
    assert "removed pacslb's nftables tables" in done.stderr
    assert "pacslb" not in bed.lab.sh(bed.lb, "nft list tables")
    wait_until(lambda: not _alive(master), 10, what="HAProxy's master gone")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
