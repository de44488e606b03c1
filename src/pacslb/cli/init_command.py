"""`pacslb init`: write a starter configuration from a deployment template, with placeholder certificates."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from .. import pki
from ..model import load_file
from ..model.problems import errors, warnings
from ..templates import TEMPLATES, TemplateOptions
from ..templates.pair import PEER_CERTIFICATE, PairParams, render_ha_section
from . import app
from .common import DEFAULT_CONFIG, EXIT_INVALID

EXIT_EXISTS = 1  # a file is in the way: nothing was written
KEY_TYPES = ("ec", "rsa")  # pki.KeyType; ECDSA first: the default (bench/README.md: handshakes per core)


def _template_list() -> str:
    return "\n".join(f"  {t.name:<12} {t.title}" for t in TEMPLATES.values())


@app.command()
def init(
    template: Annotated[
        str | None, typer.Option("--template", "-t", help=f"template name: {', '.join(TEMPLATES)}", show_default=False)
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="configuration file to write")] = DEFAULT_CONFIG,
    force: Annotated[bool, typer.Option("--force", help="replace the file and its placeholder certificates")] = False,
    vip_address: Annotated[
        str | None, typer.Option("--vip-address", help="address the virtual services listen on (default: a placeholder)")
    ] = None,
    port_offset: Annotated[
        int, typer.Option("--port-offset", help="add N to every listening port (e.g. 10000 to stay above 1024)")
    ] = 0,
    key_type: Annotated[
        str,
        typer.Option(
            "--key-type",
            help="placeholder certificates' key: ec (ECDSA P-256, several times more TLS handshakes per core) or rsa "
            "(RSA 2048, for clients that know no ECDSA)",
        ),
    ] = "ec",
    amqp_check: Annotated[
        bool,
        typer.Option(
            "--amqp-check",
            help="true-pacs: check VIP 1's RabbitMQ servers with an AMQP handshake instead of the guide's connect check",
        ),
    ] = False,
    always_on_default: Annotated[
        bool,
        typer.Option(
            "--always-on-default",
            help="true-pacs: VIP 2, 3 and 4 send requests no rule takes to real servers of their own, unchecked "
            "(the guide's 'No checks, Always on'), instead of a default backend-only service",
        ),
    ] = False,
    ha: Annotated[
        str | None,
        typer.Option(
            "--ha",
            metavar="primary|secondary",
            help="write this node's part of an HA pair",
            show_default=False,
            rich_help_panel="HA pair",
        ),
    ] = None,
    node_address: Annotated[
        str | None,
        typer.Option(
            "--node-address", help="--ha: this node's own address on --interface", show_default=False, rich_help_panel="HA pair"
        ),
    ] = None,
    peer: Annotated[
        str | None,
        typer.Option("--peer", help="--ha: the other node's own address", show_default=False, rich_help_panel="HA pair"),
    ] = None,
    interface: Annotated[
        str | None,
        typer.Option(
            "--interface",
            help="--ha: interface of VRRP and the floating IPs (e.g. eth0)",
            show_default=False,
            rich_help_panel="HA pair",
        ),
    ] = None,
    interface_network: Annotated[
        str | None,
        typer.Option(
            "--interface-network",
            help="--ha: that interface's network, e.g. 10.0.0.0/24 (checked)",
            show_default=False,
            rich_help_panel="HA pair",
        ),
    ] = None,
    virtual_router_id: Annotated[
        int,
        typer.Option("--virtual-router-id", help="--ha: VRRP router ID, the same on both nodes", rich_help_panel="HA pair"),
    ] = 51,
    peer_certificate: Annotated[
        str,
        typer.Option(
            "--peer-certificate",
            help="--ha: the peer's certificate (`pacslb ha pair` on the peer), relative to the configuration's folder",
            rich_help_panel="HA pair",
        ),
    ] = PEER_CERTIFICATE,
) -> None:
    """Write a starter configuration from a template, and a self-signed placeholder certificate beside it.

    With --ha primary|secondary, --node-address, --peer and --interface, it writes one node of an HA pair:
    run it on both nodes with the role and the two addresses swapped (docs/true-pacs.md, "An HA pair").
    """  # fmt: skip
    if template is None or template not in TEMPLATES:
        what = "choose a template with --template" if template is None else f"unknown template {template!r}"
        print(f"{what}; the templates are:\n{_template_list()}", file=sys.stderr)
        raise typer.Exit(EXIT_INVALID)
    if key_type not in KEY_TYPES:
        print(f"--key-type {key_type!r} is unknown: choose {' or '.join(KEY_TYPES)}; nothing was written", file=sys.stderr)
        raise typer.Exit(EXIT_INVALID)
    chosen = TEMPLATES[template]
    address = vip_address or chosen.default_vip_address
    pair = _pair_params(ha, node_address, peer, interface, interface_network, virtual_router_id, peer_certificate, address)
    try:
        text = chosen.render(
            TemplateOptions(
                vip_address=address, port_offset=port_offset, amqp_check=amqp_check, always_on_default=always_on_default
            )
        )
    except ValueError as exc:
        print(f"cannot write the {template} template: {exc}", file=sys.stderr)
        raise typer.Exit(EXIT_INVALID) from None
    if pair is not None:
        text += render_ha_section(pair)

    if output.is_dir():
        print(f"{output} is a folder: give the file to write, e.g. -o {output / DEFAULT_CONFIG}", file=sys.stderr)
        raise typer.Exit(EXIT_INVALID)
    certificates = [output.parent / name for name in chosen.placeholder_certificates]
    in_the_way = [f for f in (output, *certificates) if f.exists()]
    if in_the_way and not force:
        for f in in_the_way:
            print(f"{f} already exists: pacslb init does not overwrite it", file=sys.stderr)
        print("use --force to replace it, or -o to write somewhere else; nothing was written", file=sys.stderr)
        raise typer.Exit(EXIT_EXISTS)

    sans = list(dict.fromkeys([address, "localhost", "127.0.0.1"]))
    written: list[str] = []
    for cert in certificates:
        issued = pki.self_signed(f"pacslb {template} placeholder: replace me", sans, days=365, key_type=key_type)  # type: ignore[arg-type]  # checked against KEY_TYPES above
        pki.write_pem(cert, issued.bundle())
        written.append(f"wrote {cert} (self-signed placeholder certificate and key, mode 0600)")
    pki.write_atomic(output, text.encode(), mode=0o644)
    written.insert(0, f"wrote {output} (template {template}: {chosen.title})")

    # What init wrote must validate; anything but the self-signed warning is a bug in the template,
    # except the peer's certificate of a pair, which the peer makes later (a step below).
    loaded = load_file(output)
    for line in written:
        print(line)
    peer_file = output.parent / pair.peer_certificate if pair is not None else None
    pending = [p for p in errors(loaded.problems) if peer_file is not None and _is_missing_peer_certificate(p, peer_file)]
    blocking = [p for p in errors(loaded.problems) if p not in pending]
    for problem in blocking:
        print(f"error: {problem}", file=sys.stderr)
    if blocking:
        raise typer.Exit(EXIT_INVALID)
    steps = [
        f"edit {output}: replace every PLACEHOLDER (VIP address, real-server addresses) and review the\n"
        "     SITE-SPECIFIC rules; the comments at its top list what the site must fill in",
    ]
    if pair is not None:
        steps += _pair_steps(pair, template, output, peer_file, bool(pending))
    if certificates:
        steps.append(
            f"replace {', '.join(str(c) for c in certificates)} with your CA's certificate\n"
            "     (one PEM file: certificate, private key, then the chain)"
        )
    count = len(warnings(loaded.problems))
    steps += [
        f"pacslb validate -c {output}"
        + (f"   (valid now, with {count} warning{'s' if count != 1 else ''})" if count and not pending else ""),
        f"pacslb render -c {output}   to see the HAProxy configuration",
        f"pacslb up -c {output}   to run the appliance",
    ]
    print("\nnext steps:")
    for number, step in enumerate(steps, start=1):
        print(f"  {number}. {step}")


def _pair_params(
    role: str | None,
    node_address: str | None,
    peer: str | None,
    interface: str | None,
    interface_network: str | None,
    virtual_router_id: int,
    peer_certificate: str,
    vip_address: str,
) -> PairParams | None:
    """The HA pair's parameters, or None without --ha; every problem printed (naming its option) and exit 2."""
    given = {"--node-address": node_address, "--peer": peer, "--interface": interface, "--interface-network": interface_network}
    if role is None:
        stray = [option for option, value in given.items() if value is not None]
        if stray:
            print(f"error: {', '.join(stray)} describe an HA pair: add --ha primary or --ha secondary; nothing was written",
                  file=sys.stderr)  # fmt: skip
            raise typer.Exit(EXIT_INVALID)
        return None
    missing = [option for option in ("--node-address", "--peer", "--interface") if given[option] is None]
    if missing:
        print(f"error: --ha {role} needs {', '.join(missing)} (this node's address, the peer's address, the interface of "
              "VRRP); nothing was written", file=sys.stderr)  # fmt: skip
        raise typer.Exit(EXIT_INVALID)
    params = PairParams(
        role=role,  # type: ignore[arg-type]  # problems() names a wrong role
        node_address=node_address or "",
        peer_address=peer or "",
        interface=interface or "",
        interface_network=interface_network,
        virtual_router_id=virtual_router_id,
        peer_certificate=peer_certificate,
    )
    problems = params.problems(vip_address)
    for option, message in problems:
        print(f"error: {option}: {message}", file=sys.stderr)
    if problems:
        print("nothing was written", file=sys.stderr)
        raise typer.Exit(EXIT_INVALID)
    return params


def _is_missing_peer_certificate(problem, peer_file: Path) -> bool:
    return problem.path == "ha.sync.peer_certificate" and not peer_file.exists()


def _pair_steps(pair: PairParams, template: str, output: Path, peer_file: Path | None, pending: bool) -> list[str]:
    """What to do on both nodes before the pair runs."""
    other = "secondary" if pair.role == "primary" else "primary"
    steps = [
        f"on this node: pacslb ha pair --address {pair.node_address} > {pair.role}.pem\n"
        f"     and copy {pair.role}.pem to the {other} node, as {PEER_CERTIFICATE} beside its configuration\n"
        "     (compare the SHA-256 fingerprint it prints on both ends)",
    ]
    if pending:
        steps.append(
            f"from the {other} node, copy its certificate (its `pacslb ha pair` output) to {peer_file};\n"
            "     until then `pacslb validate` says the file does not exist"
        )
    steps.append(
        f"on the {other} node: pacslb init -t {template} --ha {other} --node-address {pair.peer_address} "
        f"--peer {pair.node_address} --interface IF\n     with the same --vip-address, --port-offset and "
        f"--virtual-router-id {pair.virtual_router_id}"
    )
    steps.append("open VRRP (IP protocol 112), TCP 9444 (configuration sync) and TCP 10000 (HAProxy peers) between the nodes")
    return steps
