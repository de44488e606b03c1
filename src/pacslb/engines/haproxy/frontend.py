"""The frontend of a Layer 7 service with listeners: binds, TLS termination, HTTPS redirect, HSTS, rules, headers."""

from __future__ import annotations

from ...model.checks import resolve
from ...model.config import Config, Listener, TLSTermination, VirtualService
from .env import HAProxyEnv
from .quoting import LogFormat, Text, Word, fetch
from .rules import rule_acls, rule_actions
from .shared import haproxy_address, header_rules, timeout_overrides
from .tables import CIPHER_POLICY, FRONTEND_TIMEOUTS, INSPECT_DELAY, PROXY_MODE, TLS_VERSION
from .view import Bind, Directive, Frontend


def transform_frontend(vs: VirtualService, config: Config, env: HAProxyEnv) -> Frontend:
    mode = PROXY_MODE[vs.mode]
    http = mode == "http"
    binds = [_bind(listener, _tls_bind_options(vs.tls, env, http) if vs.tls else ()) for listener in vs.listen]
    http_request: list[Directive] = []
    http_response: list[Directive] = []
    if vs.tls and vs.tls.http_redirect_port:
        addresses = dict.fromkeys(lis.address for lis in vs.listen)
        binds += [_bind(Listener(address=a, port=vs.tls.http_redirect_port)) for a in addresses]
        http_request.append(_https_redirect(vs))

    acls = tuple(acl for rule in vs.rules for acl in rule_acls(rule, vs))
    tcp_request: list[Directive] = []
    sni_inspection = not http and not vs.tls and any(rule.match.sni for rule in vs.rules)
    if sni_inspection:
        tcp_request.append(("tcp-request", "inspect-delay", INSPECT_DELAY))
    actions, use_backends = rule_actions(vs, http)
    if http:
        http_request += actions
    else:
        tcp_request += actions
    if sni_inspection:
        # wait for the ClientHello, so that rules on req.ssl_sni see the server name
        tcp_request.append(("tcp-request", "content", "accept", "if", "{", "req.ssl_hello_type", "1", "}"))

    if http:
        http_request += header_rules("http-request", vs.headers.request)
        http_response += header_rules("http-response", vs.headers.response)
        if vs.tls and vs.tls.hsts:
            http_response.append(_hsts(vs.tls))

    default_backend = vs.default_service or (vs.name if vs.real_servers else None)
    options = ["httplog" if http else "tcplog"]
    if config.settings.log.requests == "problems":
        # A line per request costs HAProxy about 3 µs of a small request's 30 (bench/README.md); by
        # default only what an administrator must see is logged: errors, retries, timeouts, 5xx.
        options.append("dontlog-normal")
    if http:
        # A reload closes idle keep-alive connections of the old worker by default, and a client that
        # sends its next request at that moment sees the connection drop. With this option the old
        # worker answers that request with `Connection: close` instead (hard-stop-after bounds it).
        options.append("idle-close-on-response")
    if http and vs.forwarded_for:
        options.append("forwardfor")
    return Frontend(
        name=vs.name,
        description=Text(vs.description) if vs.description else None,
        mode=mode,
        binds=tuple(binds),
        maxconn=vs.max_connections,
        options=tuple(options),
        timeouts=timeout_overrides(config, vs, FRONTEND_TIMEOUTS),
        tcp_request=tuple(tcp_request),
        acls=acls,
        http_request=tuple(http_request),
        http_response=tuple(http_response),
        use_backends=tuple(use_backends),
        default_backend=default_backend,
    )


def _bind(listener: Listener, options: Directive = ()) -> Bind:
    # `::` alone would also take IPv4 (dual stack) and clash with a 0.0.0.0 listener of another service
    v6only = ("v6only",) if listener.address == "::" else ()
    return Bind(haproxy_address(listener.address, str(listener.port)), (*v6only, *options))


def _tls_bind_options(tls: TLSTermination, env: HAProxyEnv, http: bool) -> Directive:
    words: list[object] = ["ssl"]
    for certificate in tls.certificates:
        words += ["crt", Word(str(resolve(certificate, env.base_dir)))]
    words += ["ssl-min-ver", TLS_VERSION[tls.min_version]]
    if tls.cipher_policy == "custom":
        ciphers, suites = tls.ciphers, tls.ciphersuites
    else:
        ciphers, suites = CIPHER_POLICY[tls.cipher_policy]
    if ciphers:
        words += ["ciphers", Word(ciphers)]
    if suites:
        words += ["ciphersuites", Word(suites)]
    if http:
        words += ["alpn", "h2,http/1.1"]
    return tuple(words)


def _https_redirect(vs: VirtualService) -> Directive:
    """Plain HTTP on http_redirect_port is sent to the first TLS listener's port."""
    port = vs.listen[0].port.first
    unless_tls = ("code", "301", "unless", "{", "ssl_fc", "}")
    if port == 443:
        return ("http-request", "redirect", "scheme", "https", *unless_tls)
    # `redirect scheme` would keep the plain port that the client's Host header names
    host = fetch("req.hdr", "host") + "," + fetch("field", 1, ":")
    return ("http-request", "redirect", "location", f"https://%[{host}]:{port}%[pathq]", *unless_tls)


def _hsts(tls: TLSTermination) -> Directive:
    hsts = tls.hsts
    assert hsts is not None
    value = f"max-age={hsts.max_age}"
    if hsts.include_subdomains:
        value += "; includeSubDomains"
    if hsts.preload:
        value += "; preload"
    return ("http-response", "set-header", "Strict-Transport-Security", LogFormat(value), "if", "{", "ssl_fc", "}")
