"""The WAF tier's Apache configuration, rendered from the model: a pure function with deterministic output.

Two steps, as for HAProxy: `build` turns each WAF policy (model/waf.py) into a `Site` in Apache's and
ModSecurity's words, and `templates/apache.conf.j2` lays them out. One Apache instance serves every policy,
each on its own loopback port (`settings.waf.first_port` on, in file order): a VirtualHost with its own
ModSecurity settings and its own copy of the Core Rule Set (CRS reads its paranoia level and thresholds once
per request in phase 1, so a per-policy value has to be set before the rules are included in the same
context). A request that passes is proxied over a Unix socket back into HAProxy (engines/haproxy/waf.py),
which sends it to the real servers.

Every free text the model lets through (paths, parameter and header names, tags) is quoted by `quote`;
the model already rejects control characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import jinja2

from ...model.config import Config
from ...model.waf import WafExclusion, WafPolicy, policies
from .. import templating
from .paths import WafPaths
from .profile import (
    CLIENT_RULES,
    DICOM_CONTENT_TYPES,
    QIDO_KEYWORDS,
    QIDO_TAG,
    QIDO_VALUE_RULES,
    STOW_CONTENT_TYPE,
    WADO_URI_PARAMETERS,
    WADO_URI_RULES,
    dicomweb_prefix_regex,
    pacs_rule_files,
    wado_uid_regex,
)

TEMPLATES = Path(__file__).parent / "templates"
MODULES = Path("/usr/lib/apache2/modules")
CRS_RULES = Path("/usr/share/modsecurity-crs/rules")
UNICODE_MAP = Path("/etc/modsecurity/unicode.mapping")
RUN_USER = "www-data"  # Apache's workers drop to it (Apache refuses to serve as root)

# CRS 3.3's default allowed content types (crs-setup.conf, rule 900220), which a policy extends.
CRS_CONTENT_TYPES = (
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "multipart/related",
    "text/xml",
    "application/xml",
    "application/soap+xml",
    "application/x-amf",
    "application/json",
    "application/octet-stream",
    "application/csp-report",
    "application/xss-auditor-report",
    "text/plain",
)
# CRS 3.3's rule files (Debian 12's modsecurity-crs; tests/unit/engines/waf checks them against the installed
# package): a policy with the PACS profile includes them by name, all but the profile's skipped files.
CRS_RULE_FILES = (
    "REQUEST-901-INITIALIZATION.conf",
    "REQUEST-903.9001-DRUPAL-EXCLUSION-RULES.conf",
    "REQUEST-903.9002-WORDPRESS-EXCLUSION-RULES.conf",
    "REQUEST-903.9003-NEXTCLOUD-EXCLUSION-RULES.conf",
    "REQUEST-903.9004-DOKUWIKI-EXCLUSION-RULES.conf",
    "REQUEST-903.9005-CPANEL-EXCLUSION-RULES.conf",
    "REQUEST-903.9006-XENFORO-EXCLUSION-RULES.conf",
    "REQUEST-905-COMMON-EXCEPTIONS.conf",
    "REQUEST-910-IP-REPUTATION.conf",
    "REQUEST-911-METHOD-ENFORCEMENT.conf",
    "REQUEST-912-DOS-PROTECTION.conf",
    "REQUEST-913-SCANNER-DETECTION.conf",
    "REQUEST-920-PROTOCOL-ENFORCEMENT.conf",
    "REQUEST-921-PROTOCOL-ATTACK.conf",
    "REQUEST-922-MULTIPART-ATTACK.conf",
    "REQUEST-930-APPLICATION-ATTACK-LFI.conf",
    "REQUEST-931-APPLICATION-ATTACK-RFI.conf",
    "REQUEST-932-APPLICATION-ATTACK-RCE.conf",
    "REQUEST-933-APPLICATION-ATTACK-PHP.conf",
    "REQUEST-934-APPLICATION-ATTACK-NODEJS.conf",
    "REQUEST-941-APPLICATION-ATTACK-XSS.conf",
    "REQUEST-942-APPLICATION-ATTACK-SQLI.conf",
    "REQUEST-943-APPLICATION-ATTACK-SESSION-FIXATION.conf",
    "REQUEST-944-APPLICATION-ATTACK-JAVA.conf",
    "REQUEST-949-BLOCKING-EVALUATION.conf",
    "RESPONSE-950-DATA-LEAKAGES.conf",
    "RESPONSE-951-DATA-LEAKAGES-SQL.conf",
    "RESPONSE-952-DATA-LEAKAGES-JAVA.conf",
    "RESPONSE-953-DATA-LEAKAGES-PHP.conf",
    "RESPONSE-954-DATA-LEAKAGES-IIS.conf",
    "RESPONSE-959-BLOCKING-EVALUATION.conf",
    "RESPONSE-980-CORRELATION.conf",
)
MODE = {"detect": "DetectionOnly", "block": "On"}
# pacslb's own rule ids: 1000-99999 is the range ModSecurity reserves for local rules (CRS uses 9xxxxx)
ALLOW_ID = 10_000
PROFILE_ID = 11_000
EXCLUSION_ID = 12_000


@dataclass(frozen=True)
class WafEnv:
    """What the renderer is given beside the model: where files go."""

    state_dir: Path


@dataclass(frozen=True)
class Site:
    """One WAF policy as an Apache VirtualHost."""

    name: str
    port: int
    engine: str  # SecRuleEngine
    body_limit: int
    no_files_limit: int
    audit_log: str
    return_socket: str
    setup: tuple[str, ...]  # SecAction lines that set CRS's variables for this policy
    before: tuple[str, ...]  # rules before CRS: the allow list, the profile, exclusions scoped to a path
    after: tuple[str, ...]  # directives after CRS: exclusions everywhere
    rule_files: tuple[str, ...]  # CRS's files to include by name; empty: all of them (*.conf)


@dataclass(frozen=True)
class ApacheConfig:
    paths: WafPaths
    user: str
    sites: tuple[Site, ...]


def quote(text: str) -> str:
    """A double-quoted Apache argument: backslashes and quotes escaped (the model rejects control characters)."""
    if re.search(r"[\x00-\x1f\x7f]", text):
        raise ValueError(f"{text!r} has control characters")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(config: Config, env: WafEnv) -> str:
    """The whole apache.conf for `config`: the same input always gives the same bytes."""
    template = _environment().get_template("apache.conf.j2")
    view = build(config, env)
    return (
        template.render(config=view, modules=str(MODULES), crs=str(CRS_RULES), unicode_map=str(UNICODE_MAP)).rstrip("\n") + "\n"
    )


def build(config: Config, env: WafEnv) -> ApacheConfig:
    paths = WafPaths(env.state_dir)
    sites = []
    for index, (name, vs, policy) in enumerate(policies(config)):
        sites.append(_site(name, vs.name, policy, config.settings.waf.first_port + index, paths))
    return ApacheConfig(paths, RUN_USER, tuple(sites))


def _site(name: str, service: str, policy: WafPolicy, port: int, paths: WafPaths) -> Site:
    before: list[str] = []
    if policy.allow_sources:
        # ModSecurity 2.9's @ipMatch refuses a host written as /32 beside a network ("Could not add entry"): plain hosts
        hosts = [n.removesuffix("/32") if "." in n else n.removesuffix("/128") for n in policy.allow_sources]
        before.append(f'SecRule REMOTE_ADDR "@ipMatch {",".join(hosts)}" "id:{ALLOW_ID},phase:1,pass,nolog,ctl:ruleEngine=Off"')
    if policy.profile == "pacs":
        before += _pacs_profile(policy)
    after: list[str] = _pacs_profile_after() if policy.profile == "pacs" else []
    for number, exclusion in enumerate(policy.exclusions):
        scoped, everywhere = _exclusion(exclusion, EXCLUSION_ID + number)
        before += scoped
        after += everywhere
    return Site(
        name=name,
        port=port,
        engine=MODE[policy.mode],
        body_limit=policy.request_body_limit,
        no_files_limit=policy.request_body_no_files_limit,
        audit_log=quote(str(paths.audit_log(name))),
        return_socket=str(paths.return_socket(service)),
        setup=_setup(policy),
        before=tuple(before),
        after=tuple(after),
        rule_files=tuple(pacs_rule_files(list(CRS_RULE_FILES))) if policy.profile == "pacs" else (),
    )


def _setup(policy: WafPolicy) -> tuple[str, ...]:
    """CRS's crs-setup.conf, per policy: paranoia level, thresholds, allowed content types."""
    types = CRS_CONTENT_TYPES + (
        tuple(t for t in DICOM_CONTENT_TYPES if t not in CRS_CONTENT_TYPES) if policy.profile == "pacs" else ()
    )
    allowed = "".join(f"|{t}|" for t in types)
    return (
        f'SecAction "id:900000,phase:1,nolog,pass,t:none,setvar:tx.paranoia_level={policy.paranoia_level}"',
        'SecAction "id:900110,phase:1,nolog,pass,t:none,'
        f"setvar:tx.inbound_anomaly_score_threshold={policy.inbound_anomaly_threshold},"
        f'setvar:tx.outbound_anomaly_score_threshold={policy.outbound_anomaly_threshold}"',
        f"SecAction \"id:900220,phase:1,nolog,pass,t:none,setvar:'tx.allowed_request_content_type={allowed}'\"",
        'SecAction "id:900990,phase:1,nolog,pass,t:none,setvar:tx.crs_setup_version=334"',
    )


def _under(paths: list[str]) -> str:
    """The condition 'the path begins with one of these'."""
    return f"REQUEST_FILENAME {quote('@rx ' + dicomweb_prefix_regex(paths))}"


def _pacs_profile(policy: WafPolicy) -> list[str]:
    """The PACS profile's rules (profile.py says why each exists), under the policy's DICOMweb paths."""
    under = _under(policy.dicomweb_paths)
    n = PROFILE_ID
    wado = ",".join(f"ctl:ruleRemoveTargetById={rule};ARGS:{p}" for rule in WADO_URI_RULES for p in WADO_URI_PARAMETERS)
    return [
        # stow-body, stow-content-type
        f'SecRule {under} "id:{n},phase:1,pass,nolog,t:none,chain"',
        '  SecRule REQUEST_METHOD "@streq POST" "chain"',
        f"  SecRule REQUEST_HEADERS:Content-Type {quote('@rx ' + STOW_CONTENT_TYPE)} "
        '"t:lowercase,ctl:requestBodyAccess=Off,ctl:ruleRemoveById=921422"',
        # dicom-json
        f'SecRule REQUEST_HEADERS:Content-Type "@rx ^application/dicom\\+json" "id:{n + 3},phase:1,pass,nolog,t:none,'
        't:lowercase,ctl:requestBodyProcessor=JSON"',
        # accept, numeric-host, user-agent
        f'SecRule {under} "id:{n + 1},phase:1,pass,nolog,t:none,ctl:ruleRemoveTargetById=920600;REQUEST_HEADERS:Accept,'
        + ",".join(f"ctl:ruleRemoveById={rule}" for rule in CLIENT_RULES)
        + '"',
        # wado-uri
        f'SecRule {under} "id:{n + 2},phase:1,pass,nolog,t:none,{wado}"',
        # wado-uid-paths: the whole URL (no query string) is the prefix and UIDs; no cookie
        f'SecRule REQUEST_URI {quote(_uid_paths(policy.dicomweb_paths))} "id:{n + 4},phase:1,pass,nolog,t:none,chain"',
        '  SecRule REQUEST_METHOD "@rx ^(?:GET|HEAD)$" "chain"',
        '  SecRule &REQUEST_HEADERS:Cookie "@eq 0" "ctl:ruleEngine=Off"',
    ]


def _uid_paths(paths: list[str]) -> str:
    return "@rx " + wado_uid_regex(paths)


def _pacs_profile_after() -> list[str]:
    """qido-values: target updates after CRS (ModSecurity reads names and patterns there, not in ctl actions); they
    hold in the whole policy, since a QIDO attribute keyword means nothing else in an imaging application."""
    return [f'SecRuleUpdateTargetById {rule} "!ARGS:{name}"' for rule in QIDO_VALUE_RULES for name in (*QIDO_KEYWORDS, QIDO_TAG)]


def _exclusion(exclusion: WafExclusion, rule_id: int) -> tuple[list[str], list[str]]:
    """An exclusion as a rule before CRS (scoped to a path) or as directives after CRS (everywhere)."""
    target = f"ARGS:{exclusion.parameter}" if exclusion.parameter else (
        f"REQUEST_HEADERS:{exclusion.header}" if exclusion.header else None
    )  # fmt: skip
    if exclusion.path_begins is not None:
        actions = []
        for rule in exclusion.rule_ids:
            actions.append(f"ctl:ruleRemoveTargetById={rule};{target}" if target else f"ctl:ruleRemoveById={rule}")
        for tag in exclusion.tags:
            actions.append(f"ctl:ruleRemoveTargetByTag={tag};{target}" if target else f"ctl:ruleRemoveByTag={tag}")
        condition = f"REQUEST_FILENAME {quote('@beginsWith ' + exclusion.path_begins)}"
        return [f'SecRule {condition} "id:{rule_id},phase:1,pass,nolog,t:none,{",".join(actions)}"'], []
    lines = []
    if target:
        lines += [f'SecRuleUpdateTargetById {rule} "!{target}"' for rule in exclusion.rule_ids]
        lines += [f'SecRuleUpdateTargetByTag {quote(tag)} "!{target}"' for tag in exclusion.tags]
    else:
        if exclusion.rule_ids:
            lines.append("SecRuleRemoveById " + " ".join(str(r) for r in exclusion.rule_ids))
        lines += [f"SecRuleRemoveByTag {quote(tag)}" for tag in exclusion.tags]
    return [], lines


def _environment() -> jinja2.Environment:
    return templating.environment(TEMPLATES, {"quote": quote})
