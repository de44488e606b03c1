"""The I/O of the TPROXY engine: `ip rule`, `ip route` and `nft` (iproute2, nftables), each bounded in time."""

from __future__ import annotations

import json
import subprocess

from .render import DEFAULT_ROUTE, TABLE_NAME

IP = "ip"
NFT = "nft"
TIMEOUT = 10.0


class KernelError(Exception):
    """`ip` or `nft` failed; the message has their own words."""


def _run(args: list[str], input: str | None = None) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KernelError(f"{' '.join(args)}: {exc}") from None
    if done.returncode != 0:
        raise KernelError(f"{' '.join(args)}: {(done.stderr or done.stdout).strip()}")
    return done.stdout


# --- ip rule --------------------------------------------------------------------------------------------------


def rule_present(family: int, mark: int, table: int) -> bool:
    """A rule `fwmark MARK lookup TABLE` (without a mask) is there, whoever added it."""
    for rule in json.loads(_run([IP, "-j", f"-{family}", "rule", "show"]) or "[]"):
        try:
            same_mark = int(rule.get("fwmark", "0"), 16) == mark and "fwmask" not in rule
        except ValueError:
            continue
        if same_mark and rule.get("table") == str(table):
            return True
    return False


def rule_add(family: int, mark: int, table: int) -> None:
    _run([IP, f"-{family}", "rule", "add", "fwmark", hex(mark), "lookup", str(table)])


def rule_del(family: int, mark: int, table: int) -> None:
    _run([IP, f"-{family}", "rule", "del", "fwmark", hex(mark), "lookup", str(table)])


# --- ip route -------------------------------------------------------------------------------------------------


def route_present(family: int, table: int) -> bool:
    """The table holds `local default dev lo`. A table that does not exist yet makes `ip` fail: then it is not."""
    try:
        routes = json.loads(_run([IP, "-j", f"-{family}", "route", "show", "table", str(table)]) or "[]")
    except (KernelError, ValueError):
        return False
    return any(r.get("type") == "local" and r.get("dst") == "default" and r.get("dev") == "lo" for r in routes)


def route_add(family: int, table: int) -> None:
    _run([IP, f"-{family}", "route", "add", "local", DEFAULT_ROUTE[family], "dev", "lo", "table", str(table)])


def route_del(family: int, table: int) -> None:
    _run([IP, f"-{family}", "route", "del", "local", DEFAULT_ROUTE[family], "dev", "lo", "table", str(table)])


# --- nftables -------------------------------------------------------------------------------------------------


def nft_check(ruleset: str) -> None:
    _run([NFT, "-c", "-f", "-"], input=ruleset)


def nft_apply(ruleset: str) -> None:
    _run([NFT, "-f", "-"], input=ruleset)


def nft_present() -> bool:
    try:
        _run([NFT, "list", "table", "inet", TABLE_NAME])
    except KernelError:
        return False
    return True


def nft_delete() -> None:
    _run([NFT, "delete", "table", "inet", TABLE_NAME])
