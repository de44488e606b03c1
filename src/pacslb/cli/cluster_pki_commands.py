"""`pacslb cluster pki init`: the cluster CA and every node's etcd certificate (cluster/pki.py; docs/cluster.md).

Run on the administrator's workstation (or one node), with any node's configuration file: the `cluster` section
lists every node. The files are then copied to each node; the CA's key stays where it was made."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..cluster.pki import ClusterPKIError, write_cluster_pki
from ..model import load_text
from .cluster_commands import cluster_app
from .common import EXIT_INVALID, print_problems

pki_app = typer.Typer(help="The cluster's CA and the nodes' etcd certificates (etcd over TLS).", no_args_is_help=True)
cluster_app.add_typer(pki_app, name="pki")


@pki_app.command()
def init(
    directory: Annotated[Path, typer.Option("--dir", help="where the CA and the nodes' folders are written")],
    config_file: Annotated[Path, typer.Option("--config", "-c", help="a node's configuration file (its cluster section)")],
    also: Annotated[
        list[str] | None,
        typer.Option(
            "--also",
            metavar="NODE=ADDRESS",
            help="one more address for NODE's certificate: one it may connect to its peers from besides its own (repeatable)",
        ),
    ] = None,
) -> None:
    """Make the cluster CA (ECDSA P-256) in DIR, and for every node of the cluster section DIR/<node>/ca.pem,
    etcd.pem and etcd.key (mode 0600), valid for the node's address. Run again after adding a node: the CA and
    the files already there are kept."""
    try:
        text = config_file.read_text()
    except OSError as exc:
        print(f"error: {config_file}: {exc.strerror or exc}", file=sys.stderr)
        raise typer.Exit(EXIT_INVALID) from None
    loaded = load_text(text)  # the structure only: the tls files it may name are the ones being made
    if loaded.config is None or loaded.config.cluster is None:
        print_problems(loaded.problems)
        print(f"error: {config_file} has no valid cluster section: pki init reads its nodes from it", file=sys.stderr)
        raise typer.Exit(EXIT_INVALID)
    cluster = loaded.config.cluster
    extra: dict[str, tuple[str, ...]] = {}
    for item in also or []:
        node, _, address = item.partition("=")
        try:
            extra[node] = (*extra.get(node, ()), str(ipaddress.ip_address(address)))
        except ValueError:
            print(f"error: --also {item!r}: give NODE=ADDRESS, e.g. lb1=10.0.2.11", file=sys.stderr)
            raise typer.Exit(EXIT_INVALID) from None
    try:
        outcome = write_cluster_pki(cluster, directory, extra=extra)
    except (ClusterPKIError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    print(f"{'made' if outcome.ca_made else 'kept'} the cluster CA {directory / 'ca.pem'} (its key ca.key stays here, "
          "off the nodes)")  # fmt: skip
    for files in outcome.nodes:
        state = "issued" if files.node in outcome.issued else "kept"
        print(f"  {files.node}: {state} {files.dir}/ -> copy to the node, then cluster.etcd.tls: "
              f"{{ca: .../{files.ca.name}, cert: .../{files.cert.name}, key: .../{files.key.name}}}")  # fmt: skip
