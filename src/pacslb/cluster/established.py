"""The connections still established on a cluster node, per service of its VIPs (pure: from the status).

A drained node withdraws its VIPs, so the routers send it no new flow, while its HAProxy keeps serving the
connections it has; an operator stops the node once they have ended. This counts them, from HAProxy's `show stat`
as the appliance's status carries it (`sessions.current` of each Layer 7 service's frontend: one frontend per
service, so the count is per service, not per VIP). Layer 4 services are the kernel's (nftables): their
connections are not counted and are named as such rather than shown as 0.

    established(config, status) -> {"total": n, "services": {name: {"vips": [...], "current": n}},
                                    "not_counted": [Layer 4 service names]}
"""

from __future__ import annotations

from ..controller.status import ApplianceStatus
from ..model.config import Config
from ..model.modes import Mode
from .announce import services_by_vip


def established(config: Config, status: ApplianceStatus) -> dict:
    """The connections HAProxy holds now on the services that listen on a VIP of this node."""
    current = {vs.name: vs.sessions.current for vs in status.virtual_services}
    vips: dict[str, list[str]] = {}
    modes: dict[str, Mode] = {}
    for vip, listening in services_by_vip(config).items():
        for vs in listening:
            vips.setdefault(vs.name, []).append(vip)
            modes[vs.name] = vs.mode
    services = {name: {"vips": v, "current": current.get(name, 0)} for name, v in vips.items() if not modes[name].is_layer4}
    not_counted = [name for name in vips if modes[name].is_layer4]
    return {"total": sum(s["current"] for s in services.values()), "services": services, "not_counted": not_counted}
