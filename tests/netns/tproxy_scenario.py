"""Drives the TPROXY engine (engines/tproxy/) through start, plan, commit, undo and stop, inside the network
namespace it is run in, and prints what the kernel holds after each step as JSON (tests/netns/test_tproxy_engine.py).

Usage: ip netns exec NS python tproxy_scenario.py STATE_DIR
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from pacslb.engines.tproxy.engine import TproxyEngine
from pacslb.model import validate_data
from pacslb.paths import StatePaths


def config(servers: list[str], transparent: bool = True, **settings) -> object:
    loaded = validate_data({
        "version": 1,
        "settings": {"transparent": settings} if settings else {},
        "virtual_services": [{
            "name": "dicom", "mode": "layer7-tcp", "transparent": transparent,
            "listen": [{"address": "0.0.0.0", "port": 104}],
            "real_servers": [{"name": f"rs{i}", "address": a, "port": 104} for i, a in enumerate(servers)],
        }],
    })  # fmt: skip
    assert loaded.ok, loaded.problems
    return loaded.config


def kernel() -> dict:
    def out(*args: str) -> str:
        done = subprocess.run(args, capture_output=True, text=True, timeout=10)
        return done.stdout if done.returncode == 0 else ""

    rules = {f: [f"{r.get('fwmark')} {r['table']}" for r in json.loads(out("ip", "-j", f"-{f}", "rule", "show") or "[]")
                 if "fwmark" in r] for f in (4, 6)}  # fmt: skip
    routes = {f"{f} {t}": [r["dst"] for r in json.loads(out("ip", "-j", f"-{f}", "route", "show", "table", t) or "[]")]
              for f in (4, 6) for t in ("20556", "4242")}  # fmt: skip
    table = out("nft", "list", "table", "inet", "pacslb_tproxy")
    marks = [line.split("mark set ")[1].split()[0] for line in table.splitlines() if "mark set" in line]
    return {"rules": rules, "routes": {k: v for k, v in routes.items() if v}, "nft": marks}


async def main(state_dir: Path) -> None:
    steps: dict[str, object] = {}
    a = config(["10.1.0.1"])
    b = config(["10.1.0.1", "fd00:1::1"], mark=0x99, table=4242)
    # a route made by hand before pacslb: used, and left there when pacslb stops
    subprocess.run(["ip", "-4", "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "20556"], check=True)
    engine = TproxyEngine(StatePaths(state_dir))
    await engine.start(a, state_dir)
    steps["started"] = kernel()
    await engine.start(a, state_dir)  # a second start changes nothing (idempotent)
    steps["started again"] = kernel()
    steps["plan a->a changed"] = engine.plan(a, a, state_dir).changed

    again = TproxyEngine(StatePaths(state_dir))  # a new controller reads the record: adopts
    steps["adopted digest is a's"] = again.applied_digest() == engine.plan(a, a, state_dir).digest
    prepared = again.plan(a, b, state_dir)
    await again.check(prepared)
    await again.commit(prepared)
    steps["committed b"] = kernel()
    steps["digest after b"] = again.applied_digest() == prepared.digest
    await again.undo(prepared)
    steps["undone"] = kernel()

    none = config(["10.1.0.1"], transparent=False)
    prepared = again.plan(a, none, state_dir)
    steps["plan a->none"] = {"changed": prepared.changed, "wanted": again.wanted(none), "steps": prepared.steps}
    await again.commit(prepared)
    steps["committed none"] = kernel()
    await again.undo(prepared)
    steps["undone none"] = kernel()
    await again.stop()
    steps["stopped"] = kernel()
    steps["record left"] = (state_dir / "tproxy" / "installed.json").exists()
    print(json.dumps(steps))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
