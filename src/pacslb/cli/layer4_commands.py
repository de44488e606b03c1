"""Layer 4 commands: `realserver-setup` (what a DR real server needs), and the nftables branch of `render`."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
import yaml

from ..model import Config
from . import app
from .common import EXIT_INVALID


def render_nftables(config: Config, l2_file: Path | None) -> str:
    """The nftables ruleset; DR's Layer 2 facts come from `l2_file` (YAML), else from this host's tables."""
    from ..engines.nftables import process
    from ..engines.nftables.render import Layer4Env, RenderError, render

    if l2_file is not None:
        env = Layer4Env.from_dict(yaml.safe_load(l2_file.read_text()) or {})
    else:
        env = process.discover_env(config)
    try:
        return render(config, env)
    except RenderError as exc:
        print(f"{exc}", file=sys.stderr)
        raise typer.Exit(EXIT_INVALID) from None


def setup_commands(vip: str, device: str = "lo") -> list[list[str]]:
    """What a direct-routing real server needs: the VIP on loopback, and no ARP answers or announcements for it."""
    ip = ipaddress.ip_address(vip)
    if ip.version == 6:
        return [["ip", "-6", "addr", "replace", f"{ip}/128", "dev", device, "nodad"]]
    return [
        ["ip", "addr", "replace", f"{ip}/32", "dev", device],
        ["sysctl", "-w", "net.ipv4.conf.all.arp_ignore=1"],
        ["sysctl", "-w", "net.ipv4.conf.all.arp_announce=2"],
    ]


@app.command("realserver-setup")
def realserver_setup(
    vip: Annotated[list[str], typer.Option("--vip", help="a VIP of a layer4-dr service (repeat for more)")],
    apply: Annotated[bool, typer.Option("--apply", help="perform the commands here instead of printing them")] = False,
) -> None:
    """Print (or with --apply perform) what a Layer 4 DR real server needs: each VIP on lo, arp_ignore=1, arp_announce=2."""
    commands: list[list[str]] = []
    for address in vip:
        try:
            for command in setup_commands(address):
                if command not in commands:
                    commands.append(command)
        except ValueError:
            print(f"--vip: {address!r} is not an IP address", file=sys.stderr)
            raise typer.Exit(EXIT_INVALID) from None
    if not apply:
        print("# On each real server of a layer4-dr service (as root); make it permanent in the server's network setup.")
        for command in commands:
            print(" ".join(command))
        return
    for command in commands:
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            print(f"{' '.join(command)}: {result.stderr.strip()}", file=sys.stderr)
            raise typer.Exit(1)
        print(f"done: {' '.join(command)}")
