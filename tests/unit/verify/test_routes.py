"""The verify plan (pure): one request per rule that takes that rule and no earlier one, and shadowed rules."""

from pacslb.model import load_text
from pacslb.model.config import Match
from pacslb.templates.true_pacs import SERVICES, render_true_pacs
from pacslb.verify.routes import DEFAULT_ROUTE, MAX_CANDIDATES, Request, candidates, matches, plan_routes, shadowed_by

HEAD = """
version: 1
virtual_services:
  - name: gw
    mode: {mode}
    listen: [{{address: 0.0.0.0, port: 8000-8010}}]
    rules:
"""
TAIL = """    default_service: dflt
  - {name: a, mode: backend-only, real_servers: [{name: a1, address: 192.0.2.1, port: 80}]}
  - {name: b, mode: backend-only, real_servers: [{name: b1, address: 192.0.2.2, port: 80}]}
  - {name: dflt, mode: backend-only, real_servers: [{name: d1, address: 192.0.2.3, port: 80}]}
"""


def config(rules: str, mode: str = "layer7-http"):
    # a backend-only service that nothing reaches is refused: keep only those the rules name
    tail = "".join(
        line + "\n"
        for line in TAIL.splitlines()
        if not any(f"name: {n}," in line and f"use_service: {n}" not in rules for n in ("a", "b"))
    )
    loaded = load_text(HEAD.format(mode=mode) + rules + tail)
    assert loaded.ok, loaded.problems
    return loaded.config


def by_rule(cfg):
    return {r.rule: r for r in plan_routes(cfg)}


def test_the_true_pacs_template_has_29_rule_routes_each_to_its_backend_only_service():
    cfg = load_text(render_true_pacs()).config
    routes = plan_routes(cfg)
    rule_routes = [r for r in routes if r.rule != DEFAULT_ROUTE]
    assert len(rule_routes) == 29
    assert {r.expect_service for r in rule_routes} == {s.name for s in SERVICES if s.mode == "backend-only"}
    assert all(r.not_sent is None and r.request.path == "/" + r.rule for r in rule_routes)
    assert [r.virtual_service for r in routes if r.rule == DEFAULT_ROUTE] == [s.name for s in SERVICES if s.port]
    kinds = {r.virtual_service: r.kind for r in routes}
    assert kinds == {"WFC_RMQAMQP": "amqp", "WFC_443": "https", "WFC_http": "http", "WFC_10443": "http",
                     "WFM_karaf_Group": "tcp", "SR_https_vs": "tcp"}  # fmt: skip


def test_a_wildcard_listener_is_reached_on_loopback_at_the_first_port_of_its_range():
    (route,) = [
        r for r in plan_routes(config("      - {name: r, match: {path_begins: [/x]}, use_service: a}\n")) if r.rule == "r"
    ]
    assert (route.address, route.port) == ("127.0.0.1", 8000)


def test_a_request_avoids_earlier_rules_that_take_some_of_its_alternatives():
    cfg = config(
        "      - {name: first, match: {path_begins: [/img]}, use_service: a}\n"
        "      - {name: second, match: {path_begins: [/img/x, /viewer]}, use_service: b}\n"
    )
    route = by_rule(cfg)["second"]
    assert route.request.path == "/viewer" and route.expect_service == "b" and route.not_sent is None


def test_every_condition_goes_into_the_request():
    cfg = config(
        "      - name: r\n"
        "        match: {path_begins: [/p], path_ends: [.json], host: [pacs.example.org],"
        " header: [{name: X-Modality, value: CT, match: begins}]}\n"
        "        use_service: a\n"
    )
    req = by_rule(cfg)["r"].request
    assert req == Request("/p/verify.json", "pacs.example.org", (("X-Modality", "CT"),), None)
    assert matches(cfg.virtual_services[0].rules[0].match, req, http=True)


def test_redirect_and_deny_expect_their_status_and_no_server():
    cfg = config(
        "      - {name: moved, match: {host: [old.example.org]}, redirect: {location: 'https://new/', code: 301}}\n"
        "      - {name: admin, match: {path_begins: [/admin]}, deny: {status: 403}}\n"
    )
    routes = by_rule(cfg)
    assert (routes["moved"].expect_service, routes["moved"].expect_status) == (None, 301)
    assert (routes["admin"].expect_service, routes["admin"].expect_status) == (None, 403)
    assert routes[DEFAULT_ROUTE].expect_service == "dflt"


def test_shadowed_rules_name_the_earlier_rule():
    cfg = config(
        "      - {name: img, match: {path_begins: [/img, /dicomweb]}, use_service: a}\n"
        "      - {name: img_ct, match: {path_begins: [/img/ct], header: [{name: X-M, value: CT}]}, use_service: b}\n"
        "      - {name: host_a, match: {host: [a.example.org, B.example.org]}, use_service: a}\n"
        "      - {name: host_b, match: {host: [b.example.org]}, use_service: b}\n"
        "      - {name: host_c, match: {host: [b.example.org, c.example.org]}, use_service: b}\n"
        "      - {name: lan, match: {source: [10.0.0.0/8]}, deny: {status: 403}}\n"
        "      - {name: lan_part, match: {source: [10.1.0.0/16], path_begins: [/x]}, use_service: b}\n"
        "      - {name: hdr, match: {header: [{name: X-Tag, value: ab, match: begins}]}, use_service: a}\n"
        "      - {name: hdr2, match: {header: [{name: x-tag, value: abc}]}, use_service: b}\n"
        "      - {name: hdr3, match: {header: [{name: X-Tag, value: zab, match: contains}]}, use_service: b}\n"
    )
    shadow = shadowed_by(cfg.virtual_services[0])
    # host_c is not shadowed: c.example.org reaches it; hdr3 is not: 'zab' contained need not begin with 'ab'
    assert shadow == {"img_ct": "img", "host_b": "host_a", "lan_part": "lan", "hdr2": "hdr"}
    routes = by_rule(cfg)
    assert routes["img_ct"].not_sent.startswith("shadowed: rule img")
    assert routes["host_c"].request.host == "c.example.org"
    assert routes["lan"].not_sent.startswith("needs a client in 10.0.0.0/8")


def test_tcp_rules_use_sni_and_http_conditions_never_hold_in_tcp_mode():
    cfg = config("      - {name: s, match: {sni: [pacs.example.org]}, use_service: a}\n", mode="layer7-tcp")
    route = by_rule(cfg)["s"]
    assert route.kind == "tls" and route.request.sni == "pacs.example.org"
    assert not matches(Match(path_begins=["/x"]), Request("/x"), http=False)


def test_candidates_are_bounded():
    many = Match(path_begins=[f"/p{i}" for i in range(20)], host=[f"h{i}.example.org" for i in range(20)])
    assert len(candidates(many)) == MAX_CANDIDATES
