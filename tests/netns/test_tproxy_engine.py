"""The TPROXY engine against the real kernel, inside a namespace of its own (tests/netns/tproxy_scenario.py drives
it there): idempotent starts, adoption by a new controller, a commit that moves mark, table and families, its undo,
the removal when nothing is transparent, and a route made by hand that pacslb uses but never removes."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from support.netns import Lab

pytestmark = [pytest.mark.netns, pytest.mark.root]

SCENARIO = str(Path(__file__).with_name("tproxy_scenario.py"))

A = {"rules": {"4": ["0x504c 20556"], "6": []}, "routes": {"4 20556": ["default"]}, "nft": ["0x0000504c"]}
B = {
    "rules": {"4": ["0x99 4242"], "6": ["0x99 4242"]},
    "routes": {"4 20556": ["default"], "4 4242": ["default"], "6 4242": ["default"]},  # 4 20556: the one made by hand
    "nft": ["0x00000099"],
}
HAND_MADE_ONLY = {"rules": {"4": [], "6": []}, "routes": {"4 20556": ["default"]}, "nft": []}


def test_the_engine_converges_adopts_undoes_and_leaves_what_it_did_not_add() -> None:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    state = Path(tempfile.mkdtemp(prefix="ptpxe-"))
    lab = Lab()
    try:
        ns = lab.ns("tproxy")
        done = lab.run(ns, [sys.executable, SCENARIO, str(state / "s")], timeout=120)
        steps = json.loads(done.stdout)
        assert steps["started"] == A, steps
        assert steps["started again"] == A
        assert steps["plan a->a changed"] is False
        assert steps["adopted digest is a's"] is True
        assert steps["committed b"] == B
        assert steps["digest after b"] is True
        assert steps["undone"] == A
        plan = steps["plan a->none"]
        assert plan["changed"] is True and plan["wanted"] is True  # wanted until what it added is gone
        assert plan["steps"] == ["tproxy: the TPROXY rule, route and nftables table pacslb_tproxy removed "
                                 "(no transparent service is left)"]  # fmt: skip
        assert steps["committed none"] == HAND_MADE_ONLY
        assert steps["undone none"] == A
        assert steps["stopped"] == HAND_MADE_ONLY
        assert steps["record left"] is False
    finally:
        lab.close()
        shutil.rmtree(state, ignore_errors=True)
