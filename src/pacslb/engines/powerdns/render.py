"""PowerDNS's two files, rendered from the model (pure: no clock, no disk, no globals).

    render_conf(gslb, root, user) -> pdns.conf     the server: where it listens, the geoip backend, the chroot
    render_zones(gslb, health, serial) -> zones.yaml   the data: what each name answers under `health`

Why the geoip backend (measured on this machine, docs/gslb.md): it is native C++, reads its zones from one YAML
file that pacslb writes, maps client networks (EDNS Client Subnet, else the resolver's address) to answers with
its `services` netmasks, and sets the answer's ECS scope to the matching network; `pdns_control reload` takes a
new file in about 60 ms without a restart (a broken file is refused and the old data keeps serving). LUA
records set the scope only to the query's own prefix and ran at ~400 queries/s here (one Lua context per query).

The zone file is JSON, which is YAML too: every value is quoted by json.dumps, so no name or address can break
out of its place (the model admits none that would; this is the second fence).
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import PurePosixPath
from typing import Mapping

from ...model.gslb import GSLB, GslbName, Zone
from .answers import Answer, NameAnswers, decide

ZONES_FILE = "zones.yaml"  # inside the chroot (the engine's folder)
LABEL_PREFIX = "_gslb"  # the labels that hold a topology name's per-network answers: "_gslb-0.wfc.pacs.example.org"
SOA_TIMERS = "3600 600 1209600"  # refresh, retry, expire: no secondary ever transfers these zones


def listen_address(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ipaddress.ip_address(address).version == 6 else f"{address}:{port}"


def render_conf(gslb: GSLB, root: PurePosixPath, user: str = "pdns") -> str:
    """pdns.conf: pdns_server binds as root, then chroots to `root` (the engine's folder) and runs as `user`."""
    lines = [
        "# rendered by pacslb from the gslb section: a change of the configuration replaces it",
        "launch=geoip",
        f"geoip-zones-file=/{ZONES_FILE}",
        "geoip-database-files=",  # no GeoIP database: the client networks are the sites' near networks
        f"chroot={root}",
        "socket-dir=/",  # in the chroot: the control socket and the PID file are the engine folder's
        f"setuid={user}",
        f"setgid={user}",
        f"local-address={listen_address(gslb.listen.address, gslb.listen.port)}",
        "non-local-bind=yes",  # an HA pair's floating IP: the backup listens on it before it holds it
        "edns-subnet-processing=yes",
        "disable-axfr=yes",  # the answers depend on the client and on health: no secondary could serve them
        # the caches are keyed by name and type, not by client network: with them on, one network's answer
        # was served to another (seen here); the geoip backend answers from memory, so they are not needed
        "cache-ttl=0",
        "query-cache-ttl=0",
        "negquery-cache-ttl=0",
        "version-string=anonymous",
        "guardian=no",
        "daemon=no",
        "disable-syslog=yes",
        "log-timestamp=yes",
        "loglevel=4",
    ]
    return "\n".join(lines) + "\n"


def _soa(zone: Zone, serial: int) -> str:
    return f"{zone.nameservers[0]} {zone.mailbox} {serial} {SOA_TIMERS} {zone.negative_ttl}"


def _records(answer: Answer, ttl: int) -> list[dict]:
    records = []
    for version, rtype in ((4, "a"), (6, "aaaa")):
        for address, weight in answer.family(version):
            content: dict = {"content": address, "ttl": ttl}
            if weight is not None:
                content["weight"] = weight
            records.append({rtype: content})
    return records


def _label(index: int, name: str) -> str:
    return f"{LABEL_PREFIX}-{index}.{name}"


def _name_data(decided: NameAnswers, name: GslbName) -> tuple[dict[str, list], dict[str, dict] | None]:
    """The records of one name, and its services entry (topology only: client networks -> labels)."""
    if name.policy != "topology" or decided.all_down:
        return {name.name: _records(decided.answers[0], name.ttl)}, None
    records: dict[str, list] = {}
    mapping: dict[str, list[str]] = {}
    for i, answer in enumerate(decided.answers):
        label = _label(i, name.name)
        records[label] = _records(answer, name.ttl)
        for network in answer.clients or ("default",):
            mapping[network] = [label]
    return records, mapping


def zone_data(gslb: GSLB, decided: list[NameAnswers], serial: int) -> dict:
    """The geoip backend's data as plain values (what render_zones writes)."""
    domains = []
    by_name = {n.name: n for n in gslb.names}
    for zone in gslb.zones:
        apex: list[dict] = [{"soa": _soa(zone, serial)}]
        apex += [{"ns": {"content": ns, "ttl": zone.ttl}} for ns in zone.nameservers]
        records: dict[str, list] = {zone.name: apex}
        services: dict[str, dict] = {}
        for ns in zone.nameservers:
            if ns == zone.name or ns.endswith("." + zone.name):
                glue = Answer((), (), tuple(zone.nameserver_addresses), "glue")
                records.setdefault(ns, []).extend(_records(glue, zone.ttl))
        for answer in decided:
            if gslb.zone_of(answer.name) is not zone:
                continue
            name_records, mapping = _name_data(answer, by_name[answer.name])
            records.update(name_records)
            if mapping is not None:
                services[answer.name] = mapping
        domain: dict = {"domain": zone.name, "ttl": zone.ttl, "records": records}
        if services:
            domain["services"] = services
        domains.append(domain)
    return {"domains": domains}


def render_zones(gslb: GSLB, health: Mapping[str, bool], serial: int) -> str:
    """zones.yaml: every zone with its SOA/NS and every name's answers under `health` (site -> up)."""
    return json.dumps(zone_data(gslb, decide(gslb, health), serial), indent=1) + "\n"
