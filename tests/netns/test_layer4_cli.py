"""`pacslb server drain|halt|online|weight` on a Layer 4 (NAT) service, through the CLI, in namespaces.

The appliance runs in the load balancer's namespace (conftest.py has the drawing); each command goes
through the controller's API to the change front door, whose transaction gives the nftables engine map updates, is recorded as a revision,
and shows in `pacslb status`. The client sees new flows follow it.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from test_layer4 import PACSLB, Appliance, checked, tally  # type: ignore[import-not-found]

from support.netns import Bed
from support.wait import wait_until

pytestmark = [pytest.mark.netns, pytest.mark.root]


@pytest.fixture
def app(bed: Bed):
    made = Appliance(bed, checked("layer4-nat"))
    try:
        yield made
    finally:
        made.close()


def cli(app: Appliance, *args: str) -> subprocess.CompletedProcess:
    return app.bed.lab.run(app.bed.lb, [PACSLB, *args, "--state-dir", str(app.dir / "s")], check=False, timeout=120)


def states(app: Appliance) -> dict[str, tuple[str, int]]:
    """`pacslb status --json`: real server -> (state, weight) of the service svc."""
    done = cli(app, "status", "--json")
    assert done.returncode == 0, done.stderr
    vs = next(v for v in json.loads(done.stdout)["virtual_services"] if v["name"] == "svc")
    return {rs["name"]: (rs["state"], rs["weight"]) for rs in vs["real_servers"]}


def server(app: Appliance, *args: str) -> str:
    done = cli(app, "server", *args)
    assert done.returncode == 0, f"{done.stdout}{done.stderr}"
    return done.stdout


def test_drain_halt_online_and_weight_through_the_cli(bed: Bed, app: Appliance) -> None:
    wait_until(lambda: {s for s, _ in states(app).values()} == {"UP"}, 30, what="both real servers UP")
    names, _ = tally(bed.client_run("tcp", 10))
    assert names == {"rs1": 5, "rs2": 5}
    holder = None
    for _ in range(2):  # a connection on rs2, held open across the drain (round robin: within two)
        h = bed.hold()
        if h.stdout.readline().strip().startswith("rs2"):
            holder = h
            break
        bed.lab.stop(h)
    assert holder is not None, "no connection reached rs2"

    said = server(app, "drain", "svc", "rs2", "-m", "maintenance")
    assert "applied" in said
    assert states(app)["rs2"][0] == "DRAIN"
    names, _ = tally(bed.client_run("tcp", 10))
    assert names == {"rs1": 10}  # new flows avoid it
    holder.stdin.write("still-there\n")
    holder.stdin.flush()
    assert holder.stdout.readline().strip() == "rs2 still-there"  # the established one goes on

    server(app, "halt", "svc", "rs2")
    assert states(app)["rs2"][0] == "MAINT"  # halt, in the status's words (HAProxy's too)
    names, _ = tally(bed.client_run("tcp", 10))
    assert names == {"rs1": 10}
    holder.stdin.write("after-halt\n")
    holder.stdin.flush()
    assert holder.stdout.readline().startswith("ERROR")  # halt drops established flows
    bed.lab.stop(holder)

    server(app, "online", "svc", "rs2")
    wait_until(lambda: states(app)["rs2"][0] == "UP", 30, what="rs2 UP again")
    names, _ = tally(bed.client_run("tcp", 10))
    assert names == {"rs1": 5, "rs2": 5}

    server(app, "weight", "svc", "rs1", "200")
    assert states(app)["rs1"][1] == 200
    names, _ = tally(bed.client_run("tcp", 30))
    assert names == {"rs1": 20, "rs2": 10}  # 2:1 (numgen inc is exact over any 3k flows)
    server(app, "weight", "svc", "rs2", "0")
    assert states(app)["rs2"] == ("DRAIN", 0)
    names, _ = tally(bed.client_run("tcp", 10))
    assert names == {"rs1": 10}

    listed = cli(app, "revisions", "--json")
    kinds = [r["kind"] for r in json.loads(listed.stdout)["revisions"]]
    assert kinds[:5] == ["server"] * 5
    assert "rs2" in (app.dir / "s" / "nftables" / "ruleset.nft").read_text()


def test_an_unknown_real_server_is_refused_and_changes_nothing(bed: Bed, app: Appliance) -> None:
    before = (app.dir / "s" / "nftables" / "ruleset.nft").read_text()
    done = cli(app, "server", "drain", "svc", "rs9")
    assert done.returncode == 1 and "rs9" in done.stdout + done.stderr
    assert (app.dir / "s" / "nftables" / "ruleset.nft").read_text() == before
    names, _ = tally(bed.client_run("tcp", 10))
    assert names == {"rs1": 5, "rs2": 5}
