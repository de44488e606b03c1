"""A rule's `rewrite:` (model/rewrite.py): what it takes, each mistake named by its field, every bound, and the
HAProxy lines it becomes (engines/haproxy/rules.py)."""

import re

import pytest

from pacslb.engines.haproxy.quoting import render_line
from pacslb.engines.haproxy.rules import prefix_regex, rewrite_actions
from pacslb.model import validate_data
from pacslb.model.rewrite import MAX_GROUPS, MAX_HOST, MAX_PATTERN, MAX_REPLACE, Rewrite, pattern_problem


def base(rewrite, mode="layer7-http", **rule):
    vs = {
        "name": "front",
        "mode": mode,
        "listen": [{"address": "127.0.0.1", "port": 8443}],
        "rules": [{"name": "to_api", "match": {"source": ["10.0.0.0/8"]}, "use_service": "api", "rewrite": rewrite, **rule}],
        "real_servers": [{"name": "rs1", "address": "192.0.2.2", "port": 80}],
    }
    api = {"name": "api", "mode": "backend-only", "real_servers": [{"name": "rs1", "address": "192.0.2.1", "port": 80}]}
    return {"version": 1, "virtual_services": [vs, api]}


def problems(data):
    return [str(p) for p in validate_data(data).problems]


RULE = "virtual_services[front].rules[to_api].rewrite"


@pytest.mark.parametrize(
    "rewrite",
    [
        {"path_prefix": {"prefix": "/dicomweb/", "replace": "/dcm4chee-arc/aets/DCM4CHEE/rs/"}},
        {"path_regex": {"pattern": r"^/viewer/study/([0-9.]+)$", "replace": r"/ui/\1"}},
        {"path_regex": {"pattern": r"(?i)^/(?P<a>x)(?:y|z)+(.*)", "replace": r"\2"}},
        {"host": "archive.example.org"},
        {"host": "archive:8080", "path_prefix": {"prefix": "/", "replace": "/base/"}},
        {"host": "[2001:db8::1]:443"},
        {"path_regex": {"pattern": "x" * MAX_PATTERN, "replace": "/" * MAX_REPLACE}},
    ],
)
def test_what_a_rewrite_takes(rewrite):
    assert problems(base(rewrite)) == []


@pytest.mark.parametrize(
    "rewrite, field, says",
    [
        ({}, RULE, "a rewrite needs path_prefix, path_regex or host"),
        (
            {"path_prefix": {"prefix": "/a", "replace": "/b"}, "path_regex": {"pattern": "a", "replace": "/b"}},
            RULE,
            "keep one",
        ),
        ({"path_prefix": {"prefix": "a/", "replace": "/b"}}, f"{RULE}.path_prefix.prefix", "must begin with '/'"),
        ({"path_prefix": {"prefix": "/a", "replace": "/b c"}}, f"{RULE}.path_prefix.replace", "spaces"),
        ({"path_prefix": {"prefix": "/a\\b", "replace": "/b"}}, f"{RULE}.path_prefix.prefix", "backslash"),
        ({"path_prefix": {"prefix": "/a"}}, f"{RULE}.path_prefix.replace", ""),
        ({"path_regex": {"pattern": "(", "replace": "/"}}, f"{RULE}.path_regex.pattern", "not a regular expression"),
        ({"path_regex": {"pattern": "x" * (MAX_PATTERN + 1), "replace": "/"}}, f"{RULE}.path_regex.pattern", "at most 256"),
        ({"path_regex": {"pattern": "/é", "replace": "/"}}, f"{RULE}.path_regex.pattern", "printable ASCII"),
        ({"path_regex": {"pattern": r"\N{DIGIT ONE}", "replace": "/"}}, f"{RULE}.path_regex.pattern", "PCRE2 refuses"),
        ({"path_regex": {"pattern": r"/\u0041", "replace": "/"}}, f"{RULE}.path_regex.pattern", "PCRE2 refuses"),
        ({"path_regex": {"pattern": "(?a)/x", "replace": "/"}}, f"{RULE}.path_regex.pattern", "inline flags"),
        ({"path_regex": {"pattern": "/a{,3}", "replace": "/"}}, f"{RULE}.path_regex.pattern", "{0,N}"),
        ({"path_regex": {"pattern": f"(?P<{'n' * 33}>x)", "replace": "/"}}, f"{RULE}.path_regex.pattern", "32 characters"),
        ({"path_regex": {"pattern": "(a)" * (MAX_GROUPS + 1), "replace": "/"}}, f"{RULE}.path_regex.pattern", "10 groups"),
        ({"path_regex": {"pattern": "/(a)", "replace": r"/\2"}}, f"{RULE}.path_regex", "names group \\2"),
        ({"path_regex": {"pattern": "/(a)", "replace": r"/\n"}}, f"{RULE}.path_regex", "no other escape"),
        ({"path_regex": {"pattern": "/a", "replace": ""}}, f"{RULE}.path_regex", "replacement is empty"),
        ({"path_regex": {"pattern": "/a", "replace": "/" * (MAX_REPLACE + 1)}}, f"{RULE}.path_regex.replace", "at most 1,024"),
        ({"host": "a" * (MAX_HOST + 1)}, f"{RULE}.host", "at most 261"),
        ({"path_regex": {"pattern": "/a", "replace": "/a b"}}, f"{RULE}.path_regex", "spaces"),
        ({"host": "bad host"}, f"{RULE}.host", "not a host name"),
        ({"host": "a.example:123456"}, f"{RULE}.host", "not a host name"),
        ({"host": "a.example:65536"}, f"{RULE}.host", "not a host name"),
        ({"host": "[2001:db8::1]:0"}, f"{RULE}.host", "not a host name"),
        ({"host": "a\nb"}, f"{RULE}.host", "not a host name"),
        ({"hosts": "a"}, f"{RULE}.hosts", ""),
    ],
)
def test_each_mistake_names_its_field(rewrite, field, says):
    found = problems(base(rewrite))
    assert any(p.startswith(field + ":") and says in p for p in found), found


def test_a_rewrite_goes_with_use_service_in_layer7_http():
    host = {"host": "a.example"}
    tcp = problems(base(host, mode="layer7-tcp"))
    assert f"{RULE}: rewriting changes HTTP requests: a layer7-tcp service cannot; use layer7-http" in tcp
    deny = base(host, deny={"status": 403})
    del deny["virtual_services"][0]["rules"][0]["use_service"]
    assert any(p.startswith(f"{RULE}: a rewrite goes with use_service") for p in problems(deny))
    waf = problems(base(host, waf={}))
    assert any(p.startswith(f"{RULE}: a rule behind the WAF cannot rewrite") for p in waf), waf
    assert problems(base(host, waf={"mode": "off"})) == []


def test_prefix_regex_matches_the_prefix_literally():
    for prefix in ["/a.b/", "/x+(y)/", "/[z]$/", "/%2F*?/", "/é/"]:
        pattern = prefix_regex(prefix)
        assert re.fullmatch(pattern, prefix + "rest").group(1) == "rest"
        assert re.fullmatch(pattern, "/other" + prefix) is None
        assert pattern_problem(pattern) is None or not prefix.isascii()


def test_the_haproxy_lines_quote_and_double_percent():
    rewrite = Rewrite.model_validate(
        {"path_regex": {"pattern": '^/"q"$(.*)', "replace": r"/100%\1"}, "host": "a.example:8080"},
    )
    lines = [render_line(a) for a in rewrite_actions(rewrite, ("taken",))]
    assert lines == [
        r'http-request replace-path "^/\"q\"\$(.*)" "/100%%\\1" if taken',
        'http-request set-header Host "a.example:8080" if taken',
    ]


def test_the_json_schema_carries_the_rewrite_and_its_bounds():
    from pacslb.model.config import Config

    defs = Config.model_json_schema(mode="validation")["$defs"]
    assert "rewrite" in defs["Rule"]["properties"]
    assert defs["PathRegexRewrite"]["properties"]["pattern"]["maxLength"] == MAX_PATTERN
    assert defs["PathRegexRewrite"]["properties"]["replace"]["maxLength"] == MAX_REPLACE
    assert set(defs["Rewrite"]["properties"]) == {"path_prefix", "path_regex", "host"}
