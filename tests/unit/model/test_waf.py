"""The `waf:` policy (model/waf.py): defaults, sizes, every limit, and each mistake named by its field."""

import pytest

from pacslb.model import validate_data
from pacslb.model.waf import MAX_ALLOW_SOURCES, MAX_EXCLUSIONS, MAX_POLICIES, MAX_RULE_IDS, policies


def base(waf=None, rule_waf=None, **front):
    vs = {
        "name": "front",
        "mode": "layer7-http",
        "listen": [{"address": "127.0.0.1", "port": 8443}],
        "rules": [{"name": "to_api", "match": {"path_begins": ["/api"]}, "use_service": "api"}],
        "real_servers": [{"name": "rs1", "address": "192.0.2.2", "port": 80}],
    }
    if waf is not None:
        vs["waf"] = waf
    if rule_waf is not None:
        vs["rules"][0]["waf"] = rule_waf
    vs.update(front)
    api = {"name": "api", "mode": "backend-only", "real_servers": [{"name": "rs1", "address": "192.0.2.1", "port": 80}]}
    return {"version": 1, "virtual_services": [vs, api]}


def problems(data):
    return [str(p) for p in validate_data(data).problems]


def test_defaults_are_detect_at_paranoia_1():
    loaded = validate_data(base(waf={}))
    assert loaded.problems == []
    waf = loaded.config.virtual_services[0].waf
    assert (waf.mode, waf.paranoia_level, waf.inbound_anomaly_threshold, waf.profile) == ("detect", 1, 5, "none")
    assert (waf.request_body_limit, waf.request_body_no_files_limit) == (13_107_200, 131_072)
    assert [name for name, _, _ in policies(loaded.config)] == ["front"]


def test_sizes_accept_units():
    loaded = validate_data(base(waf={"request_body_limit": "1GiB", "request_body_no_files_limit": "64KiB"}))
    assert loaded.problems == []
    assert loaded.config.virtual_services[0].waf.request_body_limit == 1024**3
    assert loaded.config.virtual_services[0].waf.request_body_no_files_limit == 65536


def test_a_rule_policy_is_named_service_dot_rule_and_off_is_no_policy():
    loaded = validate_data(base(waf={"mode": "off"}, rule_waf={"mode": "block", "paranoia_level": 2}))
    assert loaded.problems == []
    assert [name for name, _, _ in policies(loaded.config)] == ["front.to_api"]


@pytest.mark.parametrize(
    "data, expected",
    [
        (base(waf={"mode": "watch"}), "virtual_services[front].waf.mode: "),
        (base(waf={"paranoia_level": 5}), "virtual_services[front].waf.paranoia_level: "),
        (base(waf={"paranoia_level": 0}), "virtual_services[front].waf.paranoia_level: "),
        (base(waf={"inbound_anomaly_threshold": 0}), "virtual_services[front].waf.inbound_anomaly_threshold: "),
        (base(waf={"request_body_limit": "2GiB"}), "virtual_services[front].waf.request_body_limit: "),
        (base(waf={"request_body_limit": "12 parsecs"}), "virtual_services[front].waf.request_body_limit: "),
        (base(waf={"request_body_limit": 512}), "virtual_services[front].waf.request_body_limit: "),
        (
            base(waf={"request_body_limit": "1MiB", "request_body_no_files_limit": "2MiB"}),
            "virtual_services[front].waf: request_body_no_files_limit (2097152) is larger than",
        ),
        (base(waf={"exclusions": [{"path_begins": "/x"}]}), "virtual_services[front].waf.exclusions[0]: an"),
        (
            base(waf={"exclusions": [{"rule_ids": [942100], "parameter": "a", "header": "b"}]}),
            "virtual_services[front].waf.exclusions[0]: an exclusion is for one parameter or one header",
        ),
        (base(waf={"exclusions": [{"rule_ids": [0]}]}), "virtual_services[front].waf.exclusions[0].rule_ids[0]: "),
        (base(waf={"exclusions": [{"tags": ["bad tag"]}]}), "virtual_services[front].waf.exclusions[0].tags[0]: "),
        (
            base(waf={"exclusions": [{"rule_ids": [1], "parameter": "a b"}]}),
            "virtual_services[front].waf.exclusions[0].parameter",
        ),
        (base(waf={"allow_sources": ["10.0.0.0/33"]}), "virtual_services[front].waf.allow_sources[0]: "),
        (base(waf={"dicomweb_paths": ["dicom-web"]}), "virtual_services[front].waf.dicomweb_paths[0]: "),
        (base(waf={"detect": True}), "virtual_services[front].waf.detect: "),
        (
            base(mode="layer7-tcp", rules=[], waf={}),
            "virtual_services[front].waf: the WAF inspects HTTP: a layer7-tcp service cannot have one; remove waf",
        ),
        (
            base(waf={}, rules=[{"name": "s", "match": {"sni": ["a.example"]}, "use_service": "api"}]),
            "virtual_services[front].rules[s].match.sni: a service with a WAF cannot route on sni",
        ),
        (
            base(rules=[{"name": "r", "match": {"path_begins": ["/x"]}, "deny": {}, "waf": {}}]),
            "virtual_services[front].rules[r].waf: a WAF policy goes on a rule with use_service",
        ),
        (
            {
                **base(waf={}),
                "settings": {"waf": {"first_port": 65535}},
                "virtual_services": base(waf={}, rule_waf={})["virtual_services"],
            },
            "settings.waf.first_port: 2 WAF policies need ports up to 65536: lower first_port",
        ),
        ({**base(), "settings": {"waf": {"first_port": 80}}}, "settings.waf.first_port: "),
    ],
)
def test_each_mistake_names_its_field(data, expected):
    found = problems(data)
    assert any(p.startswith(expected) for p in found), found


@pytest.mark.parametrize(
    "waf, field",
    [
        ({"exclusions": [{"rule_ids": [942100]}] * (MAX_EXCLUSIONS + 1)}, "virtual_services[front].waf.exclusions"),
        ({"exclusions": [{"rule_ids": list(range(1, MAX_RULE_IDS + 2))}]}, "virtual_services[front].waf.exclusions[0].rule_ids"),
        ({"allow_sources": ["10.0.0.1"] * (MAX_ALLOW_SOURCES + 1)}, "virtual_services[front].waf.allow_sources"),
        ({"dicomweb_paths": ["/a"] * 21}, "virtual_services[front].waf.dicomweb_paths"),
    ],
)
def test_every_count_has_a_limit_and_its_bound_is_accepted(waf, field):
    assert any(p.startswith(field + ":") for p in problems(base(waf=waf)))
    at_bound = {k: v[:-1] if k != "exclusions" or len(v) > 1 else [{"rule_ids": v[0]["rule_ids"][:-1]}] for k, v in waf.items()}
    assert problems(base(waf=at_bound)) == []


def test_at_most_max_policies():
    api = {"name": "api", "mode": "backend-only", "real_servers": [{"name": "rs1", "address": "192.0.2.1", "port": 80}]}
    rules = [
        {"name": f"r{i}", "match": {"path_begins": [f"/p{i}"]}, "use_service": "api", "waf": {}} for i in range(MAX_POLICIES)
    ]
    vs = {"name": "front", "mode": "layer7-http", "listen": [{"address": "127.0.0.1", "port": 8443}], "rules": rules,
          "default_service": "api"}  # fmt: skip
    assert problems({"version": 1, "virtual_services": [vs, api]}) == []
    vs["waf"] = {}
    assert f"virtual_services: {MAX_POLICIES + 1} WAF policies: at most {MAX_POLICIES} (one loopback port each)" in problems(
        {"version": 1, "virtual_services": [vs, api]}
    )


def test_two_policies_with_one_name_are_refused():
    api = {"name": "api", "mode": "backend-only", "real_servers": [{"name": "rs1", "address": "192.0.2.1", "port": 80}]}
    a = {"name": "a", "mode": "layer7-http", "listen": [{"address": "127.0.0.1", "port": 8443}], "default_service": "api",
         "rules": [{"name": "b.c", "match": {"path_begins": ["/x"]}, "use_service": "api", "waf": {}}]}  # fmt: skip
    ab = {"name": "a.b", "mode": "layer7-http", "listen": [{"address": "127.0.0.1", "port": 8444}], "default_service": "api",
          "rules": [{"name": "c", "match": {"path_begins": ["/x"]}, "use_service": "api", "waf": {}}]}  # fmt: skip
    assert any(
        "two WAF policies are both called 'a.b.c'" in p for p in problems({"version": 1, "virtual_services": [a, ab, api]})
    )
