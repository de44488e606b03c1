"""What the WAF tier (issue 18) changes in haproxy.cfg: a pure step after `render.build`, as ha.py is.

HAProxy keeps TLS termination, the rules and the real servers. For a layer7-http service with a WAF policy
(on the service or on its rules), the request goes HAProxy -> Apache with ModSecurity on loopback -> back
into HAProxy, which sends it to the real servers:

  frontend <service>             the VIP, as before: TLS, the HTTPS redirect, HSTS, request and response
                                 headers, X-Forwarded-For; it sets X-Pacslb-Client to the client's address
                                 (dropping any a client sent) and sends each request to the WAF backend of
                                 the policy that covers it: a rule's own, else the service's
  backend waf:<policy>           Apache's loopback port for that policy (engines/waf/render.py)
  frontend waf-return:<service>  a Unix socket only Apache's workers reach; it takes the client's address
                                 back from X-Pacslb-Client (so source rules, source persistence and logs see
                                 the client), then applies the service's rules and sends the request to its
                                 real servers or backend-only service, as the VIP's frontend did before

A rule whose policy is `mode: off` goes straight to its service, and so does, with the PACS profile on the service,
a WADO-RS retrieval whose URL is UIDs only (the profile's wado-uid-paths: GET or HEAD, no query string, no cookie).

A STOW-RS upload (the profile's stow-body: POST under a DICOMweb path, multipart/related of application/dicom), with
the PACS profile on the service and no rule of its own policy, is judged by its head only: the Lua action
`pacslb_waf_verdict` (templates/waf_verdict.lua) sends Apache the request without its body; Apache hands an allowed
head to the return frontend, which answers 204 for it (the header X-Pacslb-Verdict, which the VIP's frontend drops
from clients). HAProxy then sends the upload straight to its service: its body, which ModSecurity would not read
anyway, no longer makes the trip through Apache (bench/README.md: that trip cost two thirds of the throughput). Any
other verdict refuses it: 403, or 503 when Apache did not answer.
Without a WAF policy nothing changes.
"""

from __future__ import annotations

from dataclasses import replace

from ...model.config import Config, Headers, VirtualService
from ...model.waf import policies
from ..waf.paths import WafPaths
from ..waf.profile import STOW_CONTENT_TYPE, dicomweb_prefix_regex, wado_uid_regex
from .env import HAProxyEnv
from .frontend import transform_frontend
from .quoting import Text, Word
from .view import Acl, Backend, Bind, Frontend, Server

CLIENT_HEADER = "X-Pacslb-Client"
VERDICT_HEADER = "X-Pacslb-Verdict"  # a head sent for a verdict only: the return frontend answers 204 for it
VERDICT_LUA = "waf_verdict.lua"
VERDICT_VAR = "txn.waf_verdict"
STOW = "waf_stow"  # the ACLs of STOW-RS uploads judged by their head (a rule's ACLs end in _path_begins, _host ...)
EXEMPT = "waf_exempt"  # the ACLs of requests the PACS profile leaves uninspected (their names cannot be a rule's)
WAF_USER_GROUP = "www-data"
SPLICE = "splice-auto"  # HAProxy splices a transfer once it fills its buffers: only bodies, never small requests  # Apache's workers, which connect to the return socket


WAF_BACKEND_PREFIX = "waf:"  # the WAF tier's backends: Apache, not real servers (pacslb verify looks past them)


def waf_backend_name(policy: str) -> str:
    return f"{WAF_BACKEND_PREFIX}{policy}"


def return_frontend_name(service: str) -> str:
    return f"waf-return:{service}"


def apply_waf(view, config: Config, env: HAProxyEnv):
    """The view with the WAF tier's backends and return frontends; unchanged without a WAF policy."""
    found = policies(config)
    if not found:
        return view
    ports = {name: config.settings.waf.first_port + index for index, (name, _, _) in enumerate(found)}
    names = set(ports)
    paths = WafPaths(env.state_dir)
    sections = []
    verdicts = False
    for section in view.sections:
        vs = config.service(section.name) if section.section == "frontend" else None
        if vs is None or not _policed(vs, names):
            sections.append(section)
            continue
        public = _public(section, vs, names)
        judged = _judged_by_head(vs, names)
        if judged:
            public = _stow_by_head(public, section, vs, ports[vs.name])
            verdicts = True
        sections.append(public)
        sections.append(_return(vs, config, env, paths, judged))
    for name, port in ports.items():
        sections.append(_waf_backend(name, port))
    global_ = view.global_
    if verdicts:
        global_ = replace(global_, lua_loads=(*global_.lua_loads, Word(str(env.lua_dir / VERDICT_LUA))))
    return replace(view, global_=global_, sections=tuple(sections))


def _policed(vs: VirtualService, names: set[str]) -> bool:
    return vs.name in names or any(f"{vs.name}.{rule.name}" in names for rule in vs.rules)


def _public(frontend: Frontend, vs: VirtualService, names: set[str]) -> Frontend:
    """The VIP's frontend, sending each request to the WAF backend of the policy that covers it."""
    service_policy = waf_backend_name(vs.name) if vs.name in names else None
    use_backends = []
    rules = [rule for rule in vs.rules if rule.use_service]
    for rule, (backend, condition) in zip(rules, frontend.use_backends, strict=True):
        if rule.waf is not None:
            target = waf_backend_name(f"{vs.name}.{rule.name}") if rule.waf.mode != "off" else backend
        else:
            target = service_policy or backend
        use_backends.append((target, condition))
    client: tuple = (("http-request", "del-header", Word(CLIENT_HEADER)),)
    set_client: tuple = ("http-request", "set-header", Word(CLIENT_HEADER), "%[src]")
    acls = frontend.acls
    if service_policy is not None and vs.waf is not None and vs.waf.profile == "pacs":
        # the PACS profile's wado-uid-paths: a WADO-RS retrieval whose URL is UIDs only, with no query string and no
        # cookie, is not inspected (engines/waf/profile.py); HAProxy sends it straight on, so that frames never make
        # the trip through Apache (bench/README.md: that trip, not the rules, is what they cost)
        acls += (
            Acl(f"{EXEMPT}_path", Word("path"), ("-m", "reg"), (Text(wado_uid_regex(vs.waf.dicomweb_paths)),)),
            Acl(f"{EXEMPT}_method", Word("method"), (), ("GET", "HEAD")),
            Acl(f"{EXEMPT}_cookie", Word("req.hdr(cookie)"), ("-m", "found")),
            Acl(f"{EXEMPT}_query", Word("query"), ("-m", "found")),
        )
        exempt = f"{EXEMPT}_path {EXEMPT}_method !{EXEMPT}_cookie !{EXEMPT}_query"
        # what goes straight on never returns through waf-return: it must not carry the header to the real servers
        set_client = (*set_client, "unless", *exempt.split())
        direct = [(backend, f"{exempt} {condition}") for backend, condition in frontend.use_backends]
        if frontend.default_backend is not None:
            direct.append((frontend.default_backend, exempt))
        use_backends = direct + use_backends
    return replace(
        frontend,
        acls=acls,
        http_request=(*client, set_client, *frontend.http_request),
        use_backends=tuple(use_backends),
        default_backend=service_policy or frontend.default_backend,
    )


def _judged_by_head(vs: VirtualService, names: set[str]) -> bool:
    """STOW-RS uploads of this service can be judged by their head: the PACS profile on the service, and no rule with a
    policy of its own (whose port the verdict would have to follow)."""
    return vs.name in names and vs.waf is not None and vs.waf.profile == "pacs" and all(rule.waf is None for rule in vs.rules)


def _stow_by_head(frontend: Frontend, original: Frontend, vs: VirtualService, port: int) -> Frontend:
    """STOW-RS uploads: a header-only verdict from Apache, then straight to the service (module docstring)."""
    assert vs.waf is not None
    acls = frontend.acls + (
        Acl(f"{STOW}_method", Word("method"), (), ("POST",)),
        Acl(f"{STOW}_path", Word("path"), ("-m", "reg"), (Text(dicomweb_prefix_regex(vs.waf.dicomweb_paths)),)),
        Acl(f"{STOW}_type", Word("req.hdr(content-type)"), ("-m", "reg", "-i"), (Text(STOW_CONTENT_TYPE),)),
        Acl(f"{STOW}_allowed", Word(f"var({VERDICT_VAR})"), ("-m", "int"), ("204",)),
        Acl(f"{STOW}_unanswered", Word(f"var({VERDICT_VAR})"), ("-m", "int"), ("ge", "500")),
    )
    stow = (f"{STOW}_method", f"{STOW}_path", f"{STOW}_type")
    verdict = (
        ("http-request", "lua.pacslb_waf_verdict", str(port), "if", *stow),
        ("http-request", "deny", "deny_status", "503", "if", *stow, f"{STOW}_unanswered"),
        ("http-request", "deny", "deny_status", "403", "if", *stow, f"!{STOW}_allowed"),
        # the upload goes straight on: the client's address is for Apache only
        ("http-request", "del-header", Word(CLIENT_HEADER), "if", *stow),
    )
    condition = " ".join(stow)
    # first, so that an upload never reaches Apache; after the exempt WADO-RS ones, which are GETs and never match
    direct = [(backend, f"{condition} {rule_condition}") for backend, rule_condition in original.use_backends]
    if original.default_backend is not None:
        direct.append((original.default_backend, condition))
    return replace(
        frontend,
        acls=acls,
        http_request=(("http-request", "del-header", Word(VERDICT_HEADER)), *frontend.http_request, *verdict),
        use_backends=(*direct, *frontend.use_backends),
    )


def _return(vs: VirtualService, config: Config, env: HAProxyEnv, paths: WafPaths, judged: bool = False) -> Frontend:
    """Where Apache hands back what it passed: the service's rules and real servers, without TLS and without
    the header changes the VIP's frontend made already; with `judged`, it answers a head sent for a verdict."""
    inner = vs.model_copy(update={"tls": None, "listen": [], "headers": Headers(forwarded_for=False)})
    frontend = transform_frontend(inner, config, env)
    bind = Bind(f"unix@{paths.return_socket(vs.name)}", ("mode", "660", "group", WAF_USER_GROUP))
    client = (
        ("http-request", "set-src", f"hdr({CLIENT_HEADER})"),
        ("http-request", "del-header", Word(CLIENT_HEADER)),
    )
    if judged:  # ModSecurity let the head through: that is the verdict, the request goes no further
        client += (
            ("http-request", "return", "status", "204", "if", "{", f"req.hdr({VERDICT_HEADER.lower()})", "-m", "found", "}"),
        )
    return replace(
        frontend,
        name=return_frontend_name(vs.name),
        binds=(bind,),
        maxconn=None,
        # large bodies (STOW-RS uploads Apache streams back) go to the real servers by the kernel's splice, not
        # copied through HAProxy's buffers: bench/README.md measured STOW-RS 100 MiB through the WAF at +26 to +45 %
        options=(*frontend.options, SPLICE),
        http_request=client + frontend.http_request,
    )


def _waf_backend(policy: str, port: int) -> Backend:
    return Backend(
        name=waf_backend_name(policy),
        description=None,
        mode="http",
        balance="roundrobin",
        hash_type=None,
        options=(SPLICE,),  # the client -> Apache leg, when the client's side is not TLS (as the return frontend)
        timeouts=(),
        persistence=(),
        health_check=(),
        http_request=(),
        http_response=(),
        http_reuse="safe",
        retries=(),
        source=None,
        default_server=(),
        servers=(Server("apache", f"127.0.0.1:{port}"),),
    )
