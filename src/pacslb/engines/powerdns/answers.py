"""What each GSLB name answers, to which clients, and why: the one pure decision behind the zone data
PowerDNS serves (render.py) and what status, the API and the WebUI show (so the two cannot disagree).

    decide(gslb, health) -> [NameAnswers]     health: site name -> up (a site not in it counts as up, as a
                                               new real server does until its checks decide)

Per name, its member sites in failover order (priority, then the order of the name's `sites`), and of
them the healthy ones:

    failover   one answer for every client: the first healthy site
    weighted   one answer for every client: every healthy site, each address weighted by its site's weight
    topology   one answer per member site with near networks: that site when healthy, else the first healthy
               site; and one for every other client: the first healthy site
    none healthy: the name's fallback addresses (or every member's), and `all_down` says so
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Mapping

from ...model.gslb import GSLB, GslbName, Site

WEIGHT_SCALE = 1000  # per-address weights keep the sites' ratio when a site's weight is shared among its addresses


@dataclass(frozen=True)
class Answer:
    """The addresses answered to some clients; `clients` empty means every client no other answer takes."""

    clients: tuple[str, ...]
    sites: tuple[str, ...]
    addresses: tuple[str, ...]
    reason: str
    weights: tuple[int, ...] = ()  # per address, under the weighted policy

    def family(self, version: int) -> list[tuple[str, int | None]]:
        """(address, weight) of one IP version (4: A records, 6: AAAA)."""
        weights: list[int | None] = list(self.weights) if self.weights else [None] * len(self.addresses)
        return [(a, w) for a, w in zip(self.addresses, weights, strict=True) if ipaddress.ip_address(a).version == version]

    def as_dict(self) -> dict:
        return {"clients": list(self.clients) or ["any"], "sites": list(self.sites), "addresses": list(self.addresses),
                "weights": list(self.weights) or None, "reason": self.reason}  # fmt: skip


@dataclass(frozen=True)
class NameAnswers:
    name: str
    policy: str
    ttl: int
    all_down: bool
    answers: tuple[Answer, ...]
    down: tuple[str, ...]  # member sites that are down

    def as_dict(self) -> dict:
        return {"name": self.name, "policy": self.policy, "ttl": self.ttl, "all_down": self.all_down,
                "down": list(self.down), "answers": [a.as_dict() for a in self.answers]}  # fmt: skip


def members(gslb: GSLB, name: GslbName) -> list[Site]:
    """The name's sites in failover order: priority first, then the order of the name's list."""
    found = [(site.priority, i, site) for i, s in enumerate(name.sites) if (site := gslb.site(s)) is not None]
    return [site for _, _, site in sorted(found, key=lambda t: (t[0], t[1]))]


def _all(sites: list[Site]) -> tuple[str, ...]:
    return tuple(a for site in sites for a in site.addresses)


def _address_weight(site: Site, address: str) -> int:
    """A site's weight shared among its addresses of one family: a site with two IPv4 VIPs gets no more A answers
    than a site with one (PowerDNS picks one record per answer, by weight)."""
    version = ipaddress.ip_address(address).version
    count = sum(1 for a in site.addresses if ipaddress.ip_address(a).version == version)
    return round(site.weight * WEIGHT_SCALE / count)


def decide_name(gslb: GSLB, name: GslbName, health: Mapping[str, bool]) -> NameAnswers:
    """The answers of one name under the current health."""
    ordered = members(gslb, name)
    up = [s for s in ordered if health.get(s.name, True)]
    down = [s for s in ordered if not health.get(s.name, True)]
    down_names = tuple(s.name for s in down)
    if not up:
        addresses = tuple(name.fallback) or _all(ordered)
        source = "the configured fallback" if name.fallback else "every member's addresses"
        answer = Answer((), (), addresses, f"every member site is down: answering {source}")
        return NameAnswers(name.name, name.policy, name.ttl, True, (answer,), down_names)
    before = [s.name for s in ordered[: ordered.index(up[0])]]
    first = Answer((), (up[0].name,), tuple(up[0].addresses),
                   f"{up[0].name} is the first healthy site in failover order" + (f" ({', '.join(before)} down)" if before else ""))  # fmt: skip
    if name.policy == "failover":
        answers: tuple[Answer, ...] = (first,)
    elif name.policy == "weighted":
        addresses = _all(up)
        weights = tuple(_address_weight(site, a) for site in up for a in site.addresses)
        shares = ", ".join(f"{s.name} {s.weight}" for s in up)
        answers = (Answer((), tuple(s.name for s in up), addresses, f"healthy sites by weight: {shares}", weights),)
    else:
        near = []
        for site in ordered:
            if not site.near:
                continue
            if health.get(site.name, True):
                near.append(Answer(tuple(site.near), (site.name,), tuple(site.addresses), f"near {site.name}"))
            else:
                near.append(Answer(tuple(site.near), (up[0].name,), tuple(up[0].addresses),
                                   f"near {site.name}, which is down: {up[0].name} is the first healthy site"))  # fmt: skip
        other = Answer((), first.sites, first.addresses, "no near site: " + first.reason)
        answers = (*near, other)
    return NameAnswers(name.name, name.policy, name.ttl, False, answers, down_names)


def decide(gslb: GSLB, health: Mapping[str, bool]) -> list[NameAnswers]:
    """Every name's answers, in the order of the configuration."""
    return [decide_name(gslb, name, health) for name in gslb.names]
