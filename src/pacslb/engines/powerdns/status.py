"""The GSLB status: per name, which sites are answered to which client networks and why; per site, its health.
One dictionary for `pacslb gslb status`, GET /api/v1/gslb and the WebUI's GSLB page."""

from __future__ import annotations

from typing import Any

from ...model.config import Config
from .answers import decide


def gslb_status(config: Config, engine: Any, checks: Any) -> dict:
    """`engine`: the PowerDNS engine (its answers and state); `checks`: the GSLB site checks (their results)."""
    if config.gslb is None:
        return {"configured": False, "running": False, "listen": None, "sites": [], "names": []}
    state = engine.observe()
    results = checks.check_results()
    sites = []
    for site in config.gslb.sites:
        row = {**results.get(site.name, {}), "up": engine.health.get(site.name, True)}  # up: what PowerDNS serves
        sites.append({"name": site.name, "addresses": list(site.addresses), "near": list(site.near), "weight": site.weight,
                      "priority": site.priority, "check": site.health_check.type, "virtual_service": site.virtual_service,
                      **row})  # fmt: skip
    return {
        "configured": True,
        "running": state.running,
        "pid": state.pid,
        "error": state.error,
        "listen": f"{config.gslb.listen.address}:{config.gslb.listen.port}",
        "reloads": state.detail.get("reloads", 0),
        "sites": sites,
        "names": [answer.as_dict() for answer in decide(config.gslb, engine.health)],
    }
