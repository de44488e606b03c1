"""nftables: check, apply, remove the pacslb tables, update one service's real servers, and find the Layer 2 facts of DR.

Everything goes through the `nft` command with a file or stdin, one transaction per call:
- `check(text)`: `nft -c -f` (the kernel validates the whole transaction; nothing changes);
- `apply(text)`: `nft -f` (the rendered file replaces pacslb's tables atomically);
- `remove()`: deletes pacslb's two tables, and nothing else;
- `update_service(config, env, name)`: the service's map elements and pick rule in one transaction, plus
  deletion of persistence / DR flow entries that point at real servers no longer available.

`discover_env(config)` reads the neighbour table, routes and links (`ip -j`) for DR services; with
`probe=True` (the appliance) it sends one empty UDP datagram to an on-link real server whose MAC is not
yet known, to make the kernel resolve it. Real servers behind a gateway are never probed.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import Iterable

from ...model.config import Config, Mode
from . import render as r

NFT = shutil.which("nft") or "/usr/sbin/nft"
IP = shutil.which("ip") or "/usr/sbin/ip"
TIMEOUT = 30.0


class NftError(Exception):
    """nft refused a file or a command; the message holds its output."""


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    output: str


def _nft(args: list[str], text: str | None = None, binary: str = NFT) -> subprocess.CompletedProcess:
    return subprocess.run([binary, *args], input=text, capture_output=True, text=True, timeout=TIMEOUT)


def check(text: str, binary: str = NFT) -> CheckResult:
    """`nft -c -f -`: would the kernel take this file? Nothing is changed."""
    result = _nft(["-c", "-f", "-"], text, binary)
    return CheckResult(result.returncode == 0, (result.stdout + result.stderr).strip())


def apply(text: str, binary: str = NFT) -> None:
    """`nft -f -`: one transaction; on failure nothing changed and NftError says why."""
    result = _nft(["-f", "-"], text, binary)
    if result.returncode != 0:
        raise NftError((result.stdout + result.stderr).strip() or f"nft exited with {result.returncode}")


def remove(binary: str = NFT) -> None:
    """Delete pacslb's tables (inet and netdev); other tables are left alone."""
    apply(r.removal(), binary)


def tables(binary: str = NFT) -> list[tuple[str, str]]:
    """(family, name) of every table in this network namespace."""
    result = _nft(["-j", "list", "tables"], None, binary)
    if result.returncode != 0:
        raise NftError(result.stderr.strip())
    return [(t["table"]["family"], t["table"]["name"]) for t in json.loads(result.stdout)["nftables"] if "table" in t]


def map_elements(family: str, name: str, binary: str = NFT) -> list[tuple[object, object]]:
    """(key, value) of a map of pacslb's table in nft's JSON form; an absent map has none."""
    result = _nft(["-j", "list", "map", family, r.TABLE, name], None, binary)
    if result.returncode != 0:
        return []
    for item in json.loads(result.stdout)["nftables"]:
        if "map" in item:
            return [(key, value) for key, value in item["map"].get("elem", [])]
    return []


def _unwrap(key: object) -> object:
    """A dynamic map's key in JSON carries its timeout: {"elem": {"val": KEY, "timeout": ..}}."""
    if isinstance(key, dict) and "elem" in key:
        return key["elem"]["val"]
    return key


def _nft_key(key: object) -> str:
    """A JSON key back into nft's words: a concatenation is a list of parts."""
    key = _unwrap(key)
    if isinstance(key, dict) and "concat" in key:
        return " . ".join(str(part) for part in key["concat"])
    return str(key)


def stale_entries(config: Config, env: r.Layer4Env, name: str, binary: str = NFT) -> list[str]:
    """Commands deleting the persistence and DR-flow entries of `name` that point at unavailable real servers.

    `update` on a dynamic map refreshes an entry but never replaces its value, so an entry naming a real
    server that went down, halted or away would keep its clients from ever sticking again.
    """
    service = next((s for s in r.transform(config, env) if s.name == name), None)
    if service is None:
        return []
    gone = {s.id for s in service.servers if not s.available}
    if not gone:
        return []
    commands = []
    maps = [service.sticky] if service.sticky_timeout else []
    if service.mode is Mode.LAYER4_DR:
        maps.append(service.flows)
    for map_name in maps:
        keys = [_nft_key(k) for k, v in map_elements(service.table, map_name, binary) if v in gone]
        for chunk in range(0, len(keys), 500):
            commands.append(f"delete element {service.table} {r.TABLE} {map_name} {{ {', '.join(keys[chunk : chunk + 500])} }}")
    return commands


def update_service(config: Config, env: r.Layer4Env, name: str, binary: str = NFT) -> None:
    """Bring one service's real-server states, weights and health into the running table (one transaction)."""
    text = r.service_update(config, env, name) + "".join(c + "\n" for c in stale_entries(config, env, name, binary))
    try:
        apply(text, binary)
    except NftError:
        # An entry may have expired between the listing and the transaction: try without deleting entries.
        apply(r.service_update(config, env, name), binary)


# --- Layer 2 facts for direct routing ------------------------------------------------------------------


def _ip_json(*args: str) -> list[dict]:
    result = subprocess.run([IP, "-j", *args], capture_output=True, text=True, timeout=TIMEOUT)
    if result.returncode != 0 or not result.stdout.strip():
        return []
    return json.loads(result.stdout)


def _poke(address: str) -> None:
    """One UDP datagram to the discard port: the kernel resolves the neighbour to send it."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.sendto(b"", (address, 9))
        except OSError:
            pass


def _neighbour(address: str, device: str) -> str | None:
    for entry in _ip_json("neigh", "show", address, "dev", device):
        if entry.get("lladdr") and "FAILED" not in entry.get("state", []) and "INCOMPLETE" not in entry.get("state", []):
            return entry["lladdr"]
    return None


def discover_env(config: Config, down: Iterable[tuple[str, str]] = (), probe: bool = False, wait: float = 2.0) -> r.Layer4Env:
    """The Layer 2 facts of the DR services, read from this namespace's links, routes and neighbour table.

    With `probe`, a real server on a local network whose MAC is not known yet gets one empty UDP
    datagram (port 9), so that the kernel resolves it; without, nothing is sent.
    """
    vip_devices: dict[str, str] = {}
    routes: dict[str, str] = {}
    link_macs: dict[str, str] = {}
    neighbours: dict[str, str] = {}
    dr = [vs for vs in config.virtual_services if vs.mode is Mode.LAYER4_DR]
    if dr:
        addresses = {}
        for link in _ip_json("addr", "show"):
            for info in link.get("addr_info", []):
                addresses[info.get("local")] = link["ifname"]
        for link in _ip_json("link", "show"):
            if link.get("address"):
                link_macs[link["ifname"]] = link["address"]
        for vs in dr:
            for listener in vs.listen:
                if listener.address in addresses:
                    vip_devices[listener.address] = addresses[listener.address]
            for rs in vs.real_servers:
                route = _ip_json("route", "get", rs.address)
                # DR reaches real servers on a local network only: a route through a gateway does not count
                if route and route[0].get("dev") and not route[0].get("gateway") and route[0].get("type") != "local":
                    routes[rs.address] = route[0]["dev"]
        deadline = time.monotonic() + (wait if probe else 0)
        pending = dict(routes)
        while pending:
            for address, device in list(pending.items()):
                mac = _neighbour(address, device)
                if mac:
                    neighbours[address] = mac
                    del pending[address]
                elif probe:
                    _poke(address)
            if not pending or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    return r.Layer4Env(vip_devices=vip_devices, routes=routes, link_macs=link_macs, neighbours=neighbours, down=frozenset(down))
