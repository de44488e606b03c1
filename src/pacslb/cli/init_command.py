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
) -> None:
    """Write a starter configuration from a template, and a self-signed placeholder certificate beside it."""
    if template is None or template not in TEMPLATES:
        what = "choose a template with --template" if template is None else f"unknown template {template!r}"
        print(f"{what}; the templates are:\n{_template_list()}", file=sys.stderr)
        raise typer.Exit(EXIT_INVALID)
    if key_type not in KEY_TYPES:
        print(f"--key-type {key_type!r} is unknown: choose {' or '.join(KEY_TYPES)}; nothing was written", file=sys.stderr)
        raise typer.Exit(EXIT_INVALID)
    chosen = TEMPLATES[template]
    address = vip_address or chosen.default_vip_address
    try:
        text = chosen.render(TemplateOptions(vip_address=address, port_offset=port_offset, amqp_check=amqp_check))
    except ValueError as exc:
        print(f"cannot write the {template} template: {exc}", file=sys.stderr)
        raise typer.Exit(EXIT_INVALID) from None

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

    # What init wrote must validate; anything but the self-signed warning is a bug in the template.
    loaded = load_file(output)
    for line in written:
        print(line)
    for problem in errors(loaded.problems):
        print(f"error: {problem}", file=sys.stderr)
    if not loaded.ok:
        raise typer.Exit(EXIT_INVALID)
    steps = [
        f"edit {output}: replace every PLACEHOLDER (VIP address, real-server addresses) and review the\n"
        "     SITE-SPECIFIC rules; the comments at its top list what the site must fill in",
    ]
    if certificates:
        steps.append(
            f"replace {', '.join(str(c) for c in certificates)} with your CA's certificate\n"
            "     (one PEM file: certificate, private key, then the chain)"
        )
    count = len(warnings(loaded.problems))
    steps += [
        f"pacslb validate -c {output}" + (f"   (valid now, with {count} warning{'s' if count != 1 else ''})" if count else ""),
        f"pacslb render -c {output}   to see the HAProxy configuration",
        f"pacslb up -c {output}   to run the appliance",
    ]
    print("\nnext steps:")
    for number, step in enumerate(steps, start=1):
        print(f"  {number}. {step}")
