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
Without a WAF policy nothing changes.
"""

from __future__ import annotations

from dataclasses import replace

from ...model.config import Config, Headers, VirtualService
from ...model.waf import policies
from ..waf.paths import WafPaths
from ..waf.profile import wado_uid_regex
from .env import HAProxyEnv
from .frontend import transform_frontend
from .quoting import Text, Word
from .view import Acl, Backend, Bind, Frontend, Server

CLIENT_HEADER = "X-Pacslb-Client"
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
    for section in view.sections:
        vs = config.service(section.name) if section.section == "frontend" else None
        if vs is None or not _policed(vs, names):
            sections.append(section)
            continue
        sections.append(_public(section, vs, names))
        sections.append(_return(vs, config, env, paths))
    for name, port in ports.items():
        sections.append(_waf_backend(name, port))
    return replace(view, sections=tuple(sections))


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


def _return(vs: VirtualService, config: Config, env: HAProxyEnv, paths: WafPaths) -> Frontend:
    """Where Apache hands back what it passed: the service's rules and real servers, without TLS and without
    the header changes the VIP's frontend made already."""
    inner = vs.model_copy(update={"tls": None, "listen": [], "headers": Headers(forwarded_for=False)})
    frontend = transform_frontend(inner, config, env)
    bind = Bind(f"unix@{paths.return_socket(vs.name)}", ("mode", "660", "group", WAF_USER_GROUP))
    client = (
        ("http-request", "set-src", f"hdr({CLIENT_HEADER})"),
        ("http-request", "del-header", Word(CLIENT_HEADER)),
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
