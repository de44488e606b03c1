"""The web application firewall (issue 18): a `waf:` policy on layer7-http services and on their rules.

A policy says how ModSecurity with the OWASP Core Rule Set (CRS) treats the requests of a service (or of the
requests one rule takes): mode, paranoia level, anomaly thresholds, request body limits, exclusions of CRS
rules, and source networks it trusts. `profile: pacs` adds the exclusions imaging traffic needs (docs/waf.md).
Each class checks what it sees alone; what spans objects is in `waf_problems` (called by model/checks.py).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Iterator, Literal

from pydantic import BeforeValidator, Field, PlainSerializer, model_validator

from .base import Strict
from .problems import Problem
from .types import Network, Text, URLPath

# ModSecurity 2.9 refuses a SecRequestBodyLimit above 1 GiB (its hard limit); larger uploads (STOW-RS) stream
# uninspected (the PACS profile turns body access off for them).
MAX_BODY_LIMIT = 1024 * 1024 * 1024
MAX_EXCLUSIONS = 200  # per policy: each is a line of the Apache file, kept readable
MAX_RULE_IDS = 100  # per exclusion
MAX_ALLOW_SOURCES = 100
MAX_DICOMWEB_PATHS = 20
MAX_POLICIES = 100  # in a configuration: one Apache listener (a loopback port) each

_UNITS = {"": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2, "mib": 1024**2, "g": 1000**3, "gb": 1000**3}
_UNITS["gib"] = 1024**3


def _check_bytes(value: Any) -> int:
    """A byte count: 131072, '128KiB', '64MiB', '1GiB' (KiB/MiB/GiB are powers of 1024, k/MB/GB of 1000)."""
    if isinstance(value, bool):
        raise ValueError("must be a size such as 131072 or '64MiB'")
    if isinstance(value, int):
        n = value
    elif isinstance(value, str) and (m := re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", value)) and m[2].lower() in _UNITS:
        n = int(m[1]) * _UNITS[m[2].lower()]
    else:
        raise ValueError(f"{value!r} is not a size: write bytes, or a number with KiB, MiB or GiB ('64MiB')")
    if not 1024 <= n <= MAX_BODY_LIMIT:
        raise ValueError(f"{n} bytes is out of range: use 1KiB to 1GiB (ModSecurity's limit)")
    return n


ByteSize = Annotated[int, BeforeValidator(_check_bytes), PlainSerializer(int)]

# A CRS tag ('attack-sqli', 'paranoia-level/2', 'OWASP_CRS/WEB_ATTACK/XSS') or a parameter / header name.
WafTag = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,127}$")]
ParameterName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\[\]-]{1,128}$")]
HeaderName = Annotated[str, Field(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")]
RuleId = Annotated[int, Field(ge=1, le=999_999)]


class WafExclusion(Strict):
    """CRS rules that do not apply: by id or tag; everywhere, under a path prefix, or only to one parameter or header."""

    rule_ids: list[RuleId] = Field(default_factory=list, max_length=MAX_RULE_IDS, description="CRS rule ids, e.g. [942100]")
    tags: list[WafTag] = Field(default_factory=list, max_length=20, description="CRS tags, e.g. ['attack-sqli']")
    path_begins: URLPath | None = Field(default=None, description="only for requests whose path begins with this")
    parameter: ParameterName | None = Field(
        default=None, description="only for this query or form parameter (ARGS:name); the rest of the request stays inspected"
    )
    header: HeaderName | None = Field(default=None, description="only for this request header (REQUEST_HEADERS:name)")
    reason: Text | None = Field(default=None, description="why: a false positive, the request that showed it")

    @model_validator(mode="after")
    def _what_and_where(self) -> "WafExclusion":
        if not self.rule_ids and not self.tags:
            raise ValueError("an exclusion names the CRS rules it removes: give rule_ids (e.g. [942100]) or tags")
        if self.parameter is not None and self.header is not None:
            raise ValueError("an exclusion is for one parameter or one header: drop parameter or header")
        return self


class WafPolicy(Strict):
    """How the WAF treats requests: ModSecurity with the OWASP CRS in front of the real servers."""

    mode: Literal["off", "detect", "block"] = Field(
        default="detect", description="'detect' records what CRS would block and passes it; 'block' answers 403; 'off'"
    )
    profile: Literal["none", "pacs"] = Field(
        default="none", description="'pacs' adds the exclusions DICOMweb and imaging viewers need (docs/waf.md)"
    )
    dicomweb_paths: list[URLPath] = Field(
        default_factory=lambda: ["/"],
        min_length=1,
        max_length=MAX_DICOMWEB_PATHS,
        description="path prefixes of the DICOMweb API the PACS profile applies to",
    )
    paranoia_level: int = Field(default=1, ge=1, le=4, description="CRS paranoia level: 1 (few false positives) to 4")
    inbound_anomaly_threshold: int = Field(default=5, ge=1, le=10_000, description="CRS inbound anomaly score that blocks")
    outbound_anomaly_threshold: int = Field(default=4, ge=1, le=10_000, description="CRS outbound anomaly score that blocks")
    request_body_limit: ByteSize = Field(
        default=13_107_200, description="largest inspected request body ('12.5MiB'); larger ones get 413"
    )
    request_body_no_files_limit: ByteSize = Field(
        default=131_072, description="largest request body without files (JSON, forms) ('128KiB')"
    )
    exclusions: list[WafExclusion] = Field(default_factory=list, max_length=MAX_EXCLUSIONS)
    allow_sources: list[Network] = Field(
        default_factory=list, max_length=MAX_ALLOW_SOURCES, description="client networks the WAF does not inspect"
    )

    @model_validator(mode="after")
    def _limits_in_order(self) -> "WafPolicy":
        if self.request_body_no_files_limit > self.request_body_limit:
            raise ValueError(
                f"request_body_no_files_limit ({self.request_body_no_files_limit}) is larger than request_body_limit "
                f"({self.request_body_limit}): lower it, or raise request_body_limit"
            )
        return self


class WafSettings(Strict):
    """Where the WAF tier (Apache with ModSecurity) listens: loopback ports, one per WAF policy."""

    first_port: int = Field(
        default=10080,
        ge=1024,
        le=65535,
        description="Apache listens on 127.0.0.1 from this port on, one port per WAF policy in file order",
    )


def policies(config: Any) -> list[tuple[str, Any, WafPolicy]]:
    """Every WAF policy that is not off, as (name, service, policy), in file order; a rule's is named 'SERVICE.RULE'.

    The name is the policy's everywhere: its Apache listener, its events, its HAProxy backend.
    """
    found = []
    for vs in config.virtual_services:
        if getattr(vs, "waf", None) is not None and vs.waf.mode != "off":
            found.append((vs.name, vs, vs.waf))
        for rule in vs.rules:
            if getattr(rule, "waf", None) is not None and rule.waf.mode != "off":
                found.append((f"{vs.name}.{rule.name}", vs, rule.waf))
    return found


def policy_ports(config: Any) -> list[int]:
    """The loopback port of each policy, in the order of `policies`."""
    return [config.settings.waf.first_port + index for index in range(len(policies(config)))]


def waf_problems(config: Any) -> Iterator[Problem]:
    """What a WAF policy cannot be, given the rest of the configuration."""
    for vs in config.virtual_services:
        p = f"virtual_services[{vs.name}]"
        has_waf = vs.waf is not None and vs.waf.mode != "off"
        if vs.waf is not None and vs.mode.value != "layer7-http":
            yield Problem(f"{p}.waf", f"the WAF inspects HTTP: a {vs.mode.value} service cannot have one; remove waf")
        for rule in vs.rules:
            rp = f"{p}.rules[{rule.name}]"
            if rule.waf is None:
                continue
            if vs.mode.value != "layer7-http":
                yield Problem(f"{rp}.waf", f"the WAF inspects HTTP: rules of a {vs.mode.value} service cannot have one")
            elif rule.use_service is None:
                yield Problem(f"{rp}.waf", "a WAF policy goes on a rule with use_service (redirect and deny answer at once)")
            has_waf = has_waf or rule.waf.mode != "off"
        if has_waf:
            for rule in vs.rules:
                if rule.match.sni:
                    # WAF-policed requests come back into HAProxy from the WAF tier without TLS: no server name to match
                    yield Problem(
                        f"{p}.rules[{rule.name}].match.sni",
                        "a service with a WAF cannot route on sni (requests return from the WAF without TLS): use host",
                    )
    names = [name for name, _, _ in policies(config)]
    for name in sorted({n for n in names if names.count(n) > 1}):
        yield Problem("virtual_services", f"two WAF policies are both called {name!r} (SERVICE.RULE): rename a service or rule")
    count = len(names)
    if count > MAX_POLICIES:
        yield Problem("virtual_services", f"{count} WAF policies: at most {MAX_POLICIES} (one loopback port each)")
    last = config.settings.waf.first_port + count - 1
    if count and last > 65535:
        yield Problem("settings.waf.first_port", f"{count} WAF policies need ports up to {last}: lower first_port")


def add_exclusion(data: dict[str, Any], policy: str, exclusion: dict[str, Any]) -> None:
    """Add `exclusion` to the WAF policy `policy` ('SERVICE' or 'SERVICE.RULE') of configuration data, in place.

    The edit of `pacslb waf exclude` and POST /api/v1/waf/exclusions; the result is validated like any change.
    Raises LookupError naming what is missing."""
    service_name, _, rule_name = policy.partition(".")
    service = next((vs for vs in data.get("virtual_services") or [] if vs.get("name") == service_name), None)
    if service is None:
        raise LookupError(f"there is no virtual service {service_name}")
    owner = service
    if rule_name:
        owner = next((r for r in service.get("rules") or [] if r.get("name") == rule_name), None)
        if owner is None:
            raise LookupError(f"virtual service {service_name} has no rule {rule_name}")
    if not isinstance(owner.get("waf"), dict):
        raise LookupError(f"{policy} has no WAF policy: add waf: to it first")
    owner["waf"].setdefault("exclusions", []).append(exclusion)
