"""Deployment templates: starter configurations for known PACS products (`pacslb init --template NAME`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .true_pacs import PLACEHOLDER_CERTIFICATE, TruePacsParams, render_true_pacs


@dataclass(frozen=True)
class TemplateOptions:
    """What `pacslb init` can pass to any template."""

    vip_address: str
    port_offset: int = 0
    amqp_check: bool = False  # True PACS: check VIP 1 (RabbitMQ) with an AMQP handshake, not a connect
    always_on_default: bool = False  # True PACS: VIP 2, 3 and 4 serve unmatched requests from their own servers


@dataclass(frozen=True)
class Template:
    name: str
    title: str
    render: Callable[[TemplateOptions], str]
    # Certificate files the configuration names, relative to its folder; `init` writes a self-signed
    # placeholder for each.
    placeholder_certificates: tuple[str, ...] = ()
    default_vip_address: str = "192.0.2.10"


def _true_pacs(options: TemplateOptions) -> str:
    return render_true_pacs(
        TruePacsParams(
            vip_address=options.vip_address,
            port_offset=options.port_offset,
            amqp_check=options.amqp_check,
            always_on_default=options.always_on_default,
        )
    )


TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        Template(
            name="true-pacs",
            title="GE HealthCare True PACS, 6 virtual services and 29 backend-only services",
            render=_true_pacs,
            placeholder_certificates=(PLACEHOLDER_CERTIFICATE,),
            default_vip_address=TruePacsParams().vip_address,
        ),
    )
}

__all__ = ["TEMPLATES", "Template", "TemplateOptions", "TruePacsParams", "render_true_pacs"]
