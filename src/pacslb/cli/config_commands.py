"""Commands that work on configuration files: init, validate, render, schema."""

from __future__ import annotations

import json
import os
import sys
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import Annotated

import typer

from ..model import Config
from ..paths import StatePaths
from . import app
from .common import DEFAULT_CONFIG, EXIT_INVALID, ConfigOption, StateDirOption, load_or_exit, state_dir


class Engine(str, Enum):
    haproxy = "haproxy"
    nftables = "nftables"
    keepalived = "keepalived"
    powerdns = "powerdns"
    waf = "waf"
    bird = "bird"


@app.command()
def validate(config: ConfigOption = DEFAULT_CONFIG, state_dir_option: StateDirOption = None) -> None:
    """Check a configuration: exit 0 when valid, else exit 2 with one line per problem ('field.path: message').

    Files it names are checked as `pacslb up` checks them on that state directory (none may lie there, but
    certificates in its certs/ folder).
    """
    load_or_exit(config, StatePaths(state_dir(state_dir_option).absolute()))
    print(f"{config}: valid")


@app.command()
def render(
    config: ConfigOption = DEFAULT_CONFIG,
    engine: Annotated[Engine, typer.Option("--engine", "-e", help="which engine's configuration")] = Engine.haproxy,
    state_dir_option: StateDirOption = None,
    l2: Annotated[
        Path | None, typer.Option("--l2", help="nftables DR: YAML of devices, routes and MACs (default: read from this host)")
    ] = None,
) -> None:
    """Print the engine configuration that the model produces (nothing is written or started); for powerdns,
    pdns.conf and then the zone data as it is with every site up."""
    from ..engines.haproxy.render import HAProxyEnv
    from ..engines.haproxy.render import render as render_haproxy

    loaded = load_or_exit(config)
    if engine is Engine.nftables:  # Layer 4 (issue 8): cli/layer4_commands.py
        from .layer4_commands import render_nftables

        sys.stdout.write(render_nftables(loaded.config, l2))
        return
    if engine is Engine.keepalived:  # the HA pair (issue 7): engines/keepalived
        from ..engines.keepalived.render import KeepalivedPaths, RenderError
        from ..engines.keepalived.render import render as render_keepalived

        try:
            sys.stdout.write(render_keepalived(loaded.config, KeepalivedPaths(state_dir(state_dir_option).absolute())))
        except RenderError as exc:
            print(f"error: {exc}; add one (docs/high-availability.md)", file=sys.stderr)
            raise typer.Exit(EXIT_INVALID) from None
        return
    if engine is Engine.powerdns:  # GSLB (issue 19): pdns.conf, then the zone data with every site up
        from ..engines.powerdns.render import render_conf, render_zones

        if loaded.config.gslb is None:
            print("error: the configuration has no gslb section (docs/gslb.md)", file=sys.stderr)
            raise typer.Exit(EXIT_INVALID)
        root = PurePosixPath(StatePaths(state_dir(state_dir_option).absolute()).powerdns_dir)
        sys.stdout.write(render_conf(loaded.config.gslb, root) + "# zones.yaml\n" + render_zones(loaded.config.gslb, {}, 1))
        return
    if engine is Engine.bird:  # a cluster node's routes (issue 20): bird.conf, then the routes with every VIP announced
        from ..engines.bird.render import render_all_routes, render_conf
        from ..model.network import vip_addresses

        if loaded.config.cluster is None:
            print("error: the configuration has no cluster section (docs/cluster.md)", file=sys.stderr)
            raise typer.Exit(EXIT_INVALID)
        folder = PurePosixPath(StatePaths(state_dir(state_dir_option).absolute()).bird_dir)
        routes = render_all_routes(vip_addresses(loaded.config))
        sys.stdout.write(render_conf(loaded.config.cluster, folder) + "".join(f"# {n}\n{t}" for n, t in routes.items()))
        return
    if engine is Engine.waf:  # the WAF tier (issue 18): engines/waf
        from ..engines.waf.render import WafEnv
        from ..engines.waf.render import render as render_waf

        sys.stdout.write(render_waf(loaded.config, WafEnv(state_dir(state_dir_option).absolute())))
        return
    from ..engines.haproxy.engine import worker_privileges  # the workers' user and chroot, as the controller runs them

    env = HAProxyEnv(state_dir=state_dir(state_dir_option), base_dir=config.resolve().parent, cpu_count=os.cpu_count() or 1,
                     **worker_privileges())  # fmt: skip
    sys.stdout.write(render_haproxy(loaded.config, env))


@app.command()
def schema() -> None:
    """Print the JSON Schema of the configuration file, for editors (YAML language servers)."""
    document = Config.model_json_schema(mode="validation")
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "pacslb configuration (pacslb.yaml)"
    print(json.dumps(document, indent=2, sort_keys=True))
