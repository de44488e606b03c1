"""The HAProxy renderer: golden files per feature, then each transform and the quoting on its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pacslb.engines.haproxy.render import (
    Backend,
    Frontend,
    HAProxyEnv,
    LogFormat,
    Skipped,
    Text,
    Word,
    build,
    fetch,
    logformat,
    quote,
    render,
    render_line,
    word,
)
from pacslb.model import Config, dump_yaml, load_file, load_text, validate_data

ENV = HAProxyEnv(state_dir=Path("/var/lib/pacslb"), base_dir=Path("/etc/pacslb"), cpu_count=2)


# --- golden files -----------------------------------------------------------------------------------


# Validation warnings that a case causes on purpose; any other problem fails the test.
EXPECTED_WARNINGS = {
    "024_transparent": "see each client's own address",  # what the real servers need (model/client_address.py)
}


def test_golden(golden_case: Path, golden_env: HAProxyEnv, update_golden: bool) -> None:
    """The rendering of each case's config.yaml is exactly its haproxy.cfg (pytest --update-golden rewrites it)."""
    loaded = load_file(golden_case / "config.yaml")
    expected_warning = EXPECTED_WARNINGS.get(golden_case.name)
    unexpected = [
        p for p in loaded.problems if p.severity == "error" or not expected_warning or expected_warning not in p.message
    ]
    assert loaded.ok and not unexpected, [str(p) for p in loaded.problems]
    text = render(loaded.config, golden_env)
    expected = golden_case / "haproxy.cfg"
    if update_golden:
        if not expected.exists() or expected.read_text() != text:
            expected.write_text(text)
        return
    assert expected.exists(), f"{expected} is missing: run `pytest --update-golden` and review the new file"
    assert text == expected.read_text(), f"{golden_case.name}: rendering differs from haproxy.cfg (pytest --update-golden)"


def test_golden_rendering_is_deterministic(golden_case: Path, golden_env: HAProxyEnv) -> None:
    """Same input, same bytes: twice in a row, and after the configuration goes through YAML and back."""
    config = load_file(golden_case / "config.yaml").config
    assert config is not None
    first = render(config, golden_env)
    assert render(config, golden_env) == first
    again = load_text(dump_yaml(config))
    assert again.config is not None
    assert render(again.config, golden_env) == first


# --- builders -----------------------------------------------------------------------------------------


def service(name: str = "web", **fields: Any) -> dict[str, Any]:
    """A valid layer7-http service as plain data; keyword arguments replace its fields."""
    data: dict[str, Any] = {
        "name": name,
        "mode": "layer7-http",
        "listen": [{"address": "192.0.2.10", "port": 80}],
        "real_servers": [{"name": "rs1", "address": "192.0.2.21", "port": 8080}],
    }
    data.update(fields)
    return data


def config(*services: dict[str, Any], **settings: Any) -> Config:
    """A validated Config of `services` (one default service when none is given) and `settings`."""
    loaded = validate_data({"version": 1, "settings": settings, "virtual_services": list(services) or [service()]})
    assert loaded.ok and loaded.config is not None, [str(p) for p in loaded.problems]
    return loaded.config


def sections(cfg: Config, kind: type) -> list[Any]:
    return [s for s in build(cfg, ENV).sections if isinstance(s, kind)]


def backend(cfg: Config, name: str) -> Backend:
    return next(b for b in sections(cfg, Backend) if b.name == name)


def frontend(cfg: Config, name: str) -> Frontend:
    return next(f for f in sections(cfg, Frontend) if f.name == name)


# --- quoting --------------------------------------------------------------------------------------------


def test_quote_escapes_what_haproxy_interprets_inside_double_quotes() -> None:
    assert quote("plain") == '"plain"'
    assert quote('say "hi"') == '"say \\"hi\\""'
    assert quote("back\\slash") == '"back\\\\slash"'
    assert quote("$HOME ${X}") == '"\\$HOME \\${X}"'  # no environment variable expansion
    assert quote("# not a comment") == '"# not a comment"'
    assert quote("100%") == '"100%"'


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\x00b", "tab\there", "del\x7f"])
def test_a_control_character_never_reaches_the_output(bad: str) -> None:
    for write in (quote, logformat, word, lambda v: fetch("req.hdr", v), lambda v: render_line(("set-header", v))):
        with pytest.raises(ValueError, match="control character"):
            write(bad)
    with pytest.raises(ValueError, match="control character"):
        render_line(("http-request", "set-header", "X", LogFormat(bad)))


def test_logformat_doubles_percent_so_values_stay_literal() -> None:
    assert logformat("100% %[src]") == '"100%% %%[src]"'
    assert render_line(("http-request", "set-header", Word("X-A"), LogFormat('50% "off"'))) == (
        'http-request set-header X-A "50%% \\"off\\""'
    )


def test_word_is_bare_only_when_haproxy_reads_it_as_one_word() -> None:
    assert word("/var/lib/pacslb/haproxy/admin.sock") == "/var/lib/pacslb/haproxy/admin.sock"
    assert word("req.hdr(host),field(1,:)") == "req.hdr(host),field(1,:)"
    assert word("/etc/pacs lb/site.pem") == '"/etc/pacs lb/site.pem"'
    assert word("X-Odd'#") == '"X-Odd\'#"'
    assert word("a$b") == '"a\\$b"'


def test_fetch_arguments_are_quoted_for_haproxys_argument_parser() -> None:
    assert fetch("req.hdr", "X-Forwarded-For", -1) == "req.hdr(X-Forwarded-For,-1)"
    assert fetch("req.cook", "a,b)c") == 'req.cook("a,b)c")'
    assert fetch("req.hdr", "X'a") == 'req.hdr("X\'a")'
    assert fetch("str", 'say "x" \\') == 'str("say \\"x\\" \\\\")'
    # the configuration parser unquotes once more: as a word, the call is quoted again
    assert word(fetch("req.hdr", "X'a")) == '"req.hdr(\\"X\'a\\")"'


def test_render_line_quotes_each_kind_of_word() -> None:
    line = ("acl", "r_host", Word("req.hdr(host)"), "-m", "str", Text("a b"), Text('q"'), "10.0.0.0/8")
    assert render_line(line) == 'acl r_host req.hdr(host) -m str "a b" "q\\"" 10.0.0.0/8'


def test_injected_newline_in_a_model_built_without_validation_fails_loudly() -> None:
    cfg = config(service(headers={"request": [{"action": "set", "name": "X-A", "value": "ok"}]}))
    vs = cfg.virtual_services[0]
    rule = vs.headers.request[0].model_copy(update={"value": "x\nfrontend evil"})
    bad = cfg.model_copy(
        update={"virtual_services": [vs.model_copy(update={"headers": vs.headers.model_copy(update={"request": [rule]})})]}
    )
    with pytest.raises(ValueError, match="control character"):
        render(bad, ENV)


def test_the_model_refuses_a_newline_before_any_renderer_sees_it() -> None:
    data = {"version": 1, "virtual_services": [service(description="line\nfrontend evil")]}
    assert not validate_data(data).ok


def test_redirect_location_and_header_values_are_literal() -> None:
    cfg = config(
        service(
            rules=[{"name": "r", "match": {"path_begins": ["/old"]}, "redirect": {"location": "https://x/%7e $y"}}],
            headers={"response": [{"action": "add", "name": "X-A", "value": '%[src] "q"'}]},
        )
    )
    text = render(cfg, ENV)
    assert 'http-request redirect location "https://x/%%7e \\$y" code 302 if r_path_begins' in text
    assert 'http-response add-header X-A "%%[src] \\"q\\""' in text


# --- naming and structure ------------------------------------------------------------------------------


def test_backend_and_server_names_are_the_service_and_real_server_names() -> None:
    cfg = config(service(real_servers=[{"name": "rs-a.1", "address": "192.0.2.1", "port": 80}]))
    b = backend(cfg, "web")
    assert [s.name for s in b.servers] == ["rs-a.1"]
    assert "\nbackend web\n" in render(cfg, ENV)
    assert "\n    server rs-a.1 192.0.2.1:80 check weight 100\n" in render(cfg, ENV)


def test_layer4_services_are_left_to_nftables() -> None:
    cfg = config(service("l4", mode="layer4-nat"), service("l7", listen=[{"address": "192.0.2.10", "port": 81}]))
    assert [(s.name, s.engine) for s in sections(cfg, Skipped)] == [("l4", "nftables")]
    assert [f.name for f in sections(cfg, Frontend)] == ["l7"]
    assert [b.name for b in sections(cfg, Backend)] == ["l7"]


def test_a_backend_only_service_takes_the_mode_of_the_service_that_reaches_it() -> None:
    tcp = service(
        "router",
        mode="layer7-tcp",
        real_servers=[],
        rules=[{"name": "r", "match": {"source": ["10.0.0.0/8"]}, "use_service": "be"}],
        default_service="be",
    )
    be = {"name": "be", "mode": "backend-only", "real_servers": [{"name": "a", "address": "192.0.2.5", "port": 1}]}
    cfg = config(tcp, be)
    assert backend(cfg, "be").mode == "tcp"
    assert [b.name for b in sections(cfg, Backend)] == ["be"]  # the router has no real servers, so no backend
    assert frontend(cfg, "router").default_backend == "be"


def test_an_http_service_with_real_servers_defaults_to_its_own_backend() -> None:
    assert frontend(config(service()), "web").default_backend == "web"


def test_thread_count_follows_settings_then_cpu_count_within_haproxys_limit() -> None:
    assert build(config(threads=3), ENV).global_.nbthread == 3
    assert build(config(), ENV).global_.nbthread == 2
    assert build(config(), HAProxyEnv(Path("/s"), Path("/b"), cpu_count=128)).global_.nbthread == 64


def test_state_paths_come_from_the_environment() -> None:
    text = render(config(), HAProxyEnv(state_dir=Path("/run/x"), base_dir=Path("/b")))
    assert "stats socket /run/x/haproxy/admin.sock mode 600 level admin expose-fd listeners" in text
    assert "server-state-file /run/x/haproxy/server-state" in text


# --- the workers' privileges ------------------------------------------------------------------------


DROPPING = HAProxyEnv(state_dir=Path("/run/x"), base_dir=Path("/b"), user="haproxy", group="haproxy", chroot=True)


def global_lines(text: str) -> list[str]:
    return text.split("\nglobal\n", 1)[1].split("\n\n", 1)[0].splitlines()


def test_workers_keep_the_masters_identity_unless_the_environment_drops_it() -> None:
    lines = global_lines(render(config(), ENV))
    assert not [line for line in lines if line.split()[0] in ("user", "group", "chroot")]


def test_workers_drop_to_the_environments_user_and_group_in_an_empty_chroot() -> None:
    lines = global_lines(render(config(), DROPPING))
    assert lines[-7:-4] == ["    chroot /run/x/haproxy/chroot", "    user haproxy", "    group haproxy"]
    assert not [line for line in lines if line.lstrip().startswith("#")]


def test_a_log_socket_path_keeps_the_workers_out_of_the_chroot_but_not_root() -> None:
    lines = global_lines(render(config(log={"target": "/dev/log"}), DROPPING))
    assert "    # no chroot: the workers send their log to a Unix socket by its path" in lines
    assert not [line for line in lines if line.startswith("    chroot")]
    assert "    user haproxy" in lines and "    group haproxy" in lines
    udp = global_lines(render(config(log={"target": "192.0.2.9:514"}), DROPPING))
    assert "    chroot /run/x/haproxy/chroot" in udp  # a UDP socket needs no path


def test_transparent_proxying_keeps_the_workers_root_but_chrooted() -> None:
    tproxy = service("tp", mode="layer7-tcp", transparent=True, listen=[{"address": "192.0.2.11", "port": 104}])
    lines = global_lines(render(config(service(), tproxy), DROPPING))
    assert "    # the workers stay root: transparent proxying (tp) needs CAP_NET_ADMIN" in lines
    assert not [line for line in lines if line.split()[0] in ("user", "group")]
    assert "    chroot /run/x/haproxy/chroot" in lines


def test_relative_certificate_paths_resolve_from_base_dir_and_absolute_ones_stay() -> None:
    cfg = config(service(tls={"certificates": ["certs/a.pem", "/abs/b.pem"]}))
    text = render(cfg, ENV)
    assert "ssl crt /etc/pacslb/certs/a.pem crt /abs/b.pem ssl-min-ver TLSv1.2" in text


# --- real servers ---------------------------------------------------------------------------------------


def test_drain_is_weight_zero_and_halt_is_disabled() -> None:
    cfg = config(
        service(
            real_servers=[
                {"name": "d", "address": "192.0.2.1", "port": 80, "state": "drain", "weight": 50},
                {"name": "h", "address": "192.0.2.2", "port": 80, "state": "halt", "weight": 50},
            ]
        )
    )
    d, h = backend(cfg, "web").servers
    assert d.options == ("check", "weight", "0")
    assert h.options == ("check", "weight", "50", "disabled")


def test_servers_keep_their_order_and_the_fallback_comes_last() -> None:
    cfg = config(
        service(
            real_servers=[
                {"name": "b1", "address": "192.0.2.1", "port": 80, "backup": True},
                {"name": "a", "address": "192.0.2.2", "port": 80},
                {"name": "b2", "address": "192.0.2.3", "port": 80, "backup": True},
            ],
            fallback={"address": "192.0.2.9", "port": 80},
        )
    )
    servers = backend(cfg, "web").servers
    assert [s.name for s in servers] == ["b1", "a", "b2", "fallback"]
    assert servers[-1].options == ("backup",)


def test_ipv6_and_portless_servers() -> None:
    web = service(
        health_check={"type": "connect", "port": 9000},
        resolvers="dns",  # the DNS-named server is looked up at run time
        real_servers=[
            {"name": "v6", "address": "2001:db8::1"},
            {"name": "v6p", "address": "2001:db8::2", "port": 443},
            {"name": "dns", "address": "PACS.example.org"},
        ],
    )
    loaded = validate_data(
        {"version": 1, "resolvers": [{"name": "dns", "nameservers": ["192.0.2.53:53"]}], "virtual_services": [web]}
    )
    assert loaded.config is not None, [str(p) for p in loaded.problems]
    assert [s.address for s in backend(loaded.config, "web").servers] == [
        "[2001:db8::1]",
        "[2001:db8::2]:443",
        "pacs.example.org",
    ]


def test_https_check_of_encrypted_servers_keeps_their_verification() -> None:
    cfg = config(
        service(
            health_check={"type": "https", "path": "/"},
            server_tls={"verify": "required", "ca_file": "ca.pem", "sni": "pacs.example.org"},
            real_servers=[
                {"name": "enc", "address": "192.0.2.1", "port": 443, "encrypted": True},
                {"name": "plain", "address": "192.0.2.2", "port": 80},
            ],
        )
    )
    enc, plain = backend(cfg, "web").servers
    assert render_line(enc.options) == (
        "check weight 100 ssl verify required ca-file /etc/pacslb/ca.pem sni str(pacs.example.org) "
        'ssl-min-ver TLSv1.2 check-ssl check-sni "pacs.example.org"'
    )
    # a plain server's HTTPS check verifies with the service's CA when one is given
    assert render_line(plain.options) == (
        'check weight 100 check-ssl verify required ca-file /etc/pacslb/ca.pem check-sni "pacs.example.org"'
    )


def test_https_check_of_plain_servers_without_a_ca_accepts_any_certificate() -> None:
    cfg = config(
        service(
            health_check={"type": "https", "path": "/"},
            real_servers=[{"name": "plain", "address": "192.0.2.2", "port": 80}],
        )
    )
    (plain,) = backend(cfg, "web").servers
    assert render_line(plain.options) == "check weight 100 check-ssl verify none"


def test_http_backends_retry_idempotent_requests_only() -> None:
    text = render(config(service()), ENV)
    assert "    retry-on conn-failure empty-response junk-response\n" in text
    assert "    http-request disable-l7-retry if !METH_GET !METH_HEAD !METH_OPTIONS\n" in text


def test_no_retries_means_no_layer7_retry_rules_either() -> None:
    # retry-on with retries 0 would retry nothing, yet HAProxy would still copy each GET's buffer for it
    text = render(config(service(), retries=0), ENV)
    assert "retries 0" in text and "retry-on" not in text and "disable-l7-retry" not in text


# --- rules ------------------------------------------------------------------------------------------------


def _be(name: str) -> dict[str, Any]:
    return {"name": name, "mode": "backend-only", "real_servers": [{"name": "a", "address": "192.0.2.5", "port": 80}]}


def test_rules_in_plain_order_are_written_as_they_read() -> None:
    cfg = config(
        service(
            rules=[
                {"name": "deny_net", "match": {"source": ["10.0.0.0/8"]}, "deny": {"status": 403}},
                {"name": "to_a", "match": {"path_begins": ["/a"], "host": ["x.example.org"]}, "use_service": "a"},
            ]
        ),
        _be("a"),
    )
    f = frontend(cfg, "web")
    assert [render_line(r) for r in f.http_request] == ["http-request deny deny_status 403 if deny_net_source"]
    assert f.use_backends == (("a", "to_a_path_begins to_a_host"),)


def test_a_use_service_rule_before_a_deny_marks_the_requests_it_takes() -> None:
    cfg = config(
        service(
            rules=[
                {"name": "to_a", "match": {"path_begins": ["/a"]}, "use_service": "a"},
                {"name": "deny_net", "match": {"source": ["10.0.0.0/8"]}, "deny": {"status": 403}},
                {"name": "to_b", "match": {"path_begins": ["/b"]}, "use_service": "b"},
            ]
        ),
        _be("a"),
        _be("b"),
    )
    f = frontend(cfg, "web")
    assert [render_line(r) for r in f.http_request] == [
        "http-request set-var(txn.pacslb_rule) str(to_a) if to_a_path_begins",
        "http-request deny deny_status 403 if !{ var(txn.pacslb_rule) -m found } deny_net_source",
        "http-request set-var(txn.pacslb_rule) str(to_b) if !{ var(txn.pacslb_rule) -m found } to_b_path_begins",
    ]
    assert f.use_backends == (
        ("a", "{ var(txn.pacslb_rule) -m str to_a }"),
        ("b", "{ var(txn.pacslb_rule) -m str to_b }"),
    )


def test_header_conditions_are_one_acl_of_several_lines() -> None:
    cfg = config(
        service(
            rules=[
                {
                    "name": "h",
                    "match": {"header": [{"name": "X-A", "value": "-1"}, {"name": "X-B"}]},
                    "use_service": "a",
                }
            ]
        ),
        _be("a"),
    )
    f = frontend(cfg, "web")
    assert [render_line(a.words) for a in f.acls] == [
        'acl h_header req.fhdr(X-A) -m str -- "-1"',
        "acl h_header req.hdr(X-B) -m found",
    ]
    assert f.use_backends == (("a", "h_header"),)


def test_sni_in_tcp_mode_waits_for_the_client_hello() -> None:
    cfg = config(
        service(
            mode="layer7-tcp",
            rules=[{"name": "s", "match": {"sni": ["a.example.org"]}, "deny": {}}],
        )
    )
    f = frontend(cfg, "web")
    assert [render_line(r) for r in f.tcp_request] == [
        "tcp-request inspect-delay 5s",
        "tcp-request content reject if s_sni",
        "tcp-request content accept if { req.ssl_hello_type 1 }",
    ]
    assert render_line(f.acls[0].words) == 'acl s_sni req.ssl_sni -m str -i "a.example.org"'


# --- empty values ----------------------------------------------------------------------------------------
# HAProxy's keyword parsers read an empty word as the end of the line, so an empty value never
# becomes `""`: it takes a form that means the same.


def test_an_empty_header_value_is_the_empty_log_format_expression() -> None:
    cfg = config(service(headers={"request": [{"action": "set", "name": "X-Empty", "value": ""}]}))
    assert 'http-request set-header X-Empty "%[str()]"' in render(cfg, ENV)


def test_empty_texts_in_conditions_and_checks_keep_their_meaning() -> None:
    cfg = config(
        service(
            health_check={"type": "http", "expect_body": ""},
            rules=[
                {
                    "name": "h",
                    "match": {"header": [{"name": "X-A", "value": ""}, {"name": "X-B", "value": "", "match": "begins"}]},
                    "deny": {},
                }
            ],
        )
    )
    assert [render_line(a.words) for a in frontend(cfg, "web").acls] == [
        "acl h_header req.fhdr(X-A) -m len 0",
        "acl h_header req.hdr(X-B) -m found",
    ]
    assert not any("expect" in d and "string" in d for d in backend(cfg, "web").health_check)


def test_quote_refuses_an_empty_word() -> None:
    with pytest.raises(ValueError, match="empty"):
        quote("")


def test_verify_required_without_a_ca_file_is_never_rendered_as_verify_none() -> None:
    cfg = config(service(real_servers=[{"name": "e", "address": "192.0.2.1", "port": 443, "encrypted": True}]))
    (server,) = backend(cfg, "web").servers
    assert render_line(server.options) == "check weight 100 ssl verify required ssl-min-ver TLSv1.2"


def test_one_redirect_listener_per_address() -> None:
    # structural validation only: checks.check() reports the redirect port of each listener as a clash
    cfg = Config.model_validate(
        {
            "version": 1,
            "virtual_services": [
                service(
                    listen=[{"address": "192.0.2.10", "port": 443}, {"address": "192.0.2.10", "port": 8443}],
                    tls={"certificates": ["site.pem"], "http_redirect_port": 80},
                )
            ],
        }
    )
    assert [b.address for b in frontend(cfg, "web").binds] == ["192.0.2.10:443", "192.0.2.10:8443", "192.0.2.10:80"]
