"""Property: any input is either accepted, and then renders a file the real `haproxy -c` accepts,
or rejected with field-pathed problems. No exception ever escapes the loader or the renderer."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pacslb.engines.haproxy.render import HAProxyEnv, render
from pacslb.model import validate_data
from pacslb.pki import self_signed

pytestmark = [pytest.mark.engine, pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")]

# Values a user might plausibly write, good and bad side by side.
names = st.sampled_from(["web", "api", "WFC_443", "WFC_inference_443", "rs1", "rs2", "a b", "", "x" * 70, "-bad", "ok.name", 7])
addresses = st.sampled_from(["127.0.0.1", "127.0.0.2", "::1", "0.0.0.0", "300.1.1.1", "host.example", "192.0.2.5", "", None])
ports = st.sampled_from([80, 443, 8443, 0, 70000, "8000-8010", "9000-8999", "abc", True, 3080])
durations = st.sampled_from(["5s", "100ms", "12h", 3, "0s", "soon", "30d", -1, "2m"])
modes = st.sampled_from(["layer7-http", "layer7-tcp", "backend-only", "layer4-nat", "layer4-dr", "layer4-snat", "bogus"])
texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


def optional(**fields):
    """A mapping with any subset of the given fields."""
    return st.fixed_dictionaries({}, optional=fields)


health_checks = st.one_of(
    optional(type=st.sampled_from(["none", "connect", "http", "https", "dicom"])),
    optional(
        type=st.sampled_from(["http", "https", "connect"]),
        path=st.sampled_from(["/", "/health", "nope", "/a b"]),
        host=st.one_of(texts, st.just("pacs.example")),
        method=st.sampled_from(["GET", "HEAD", "FETCH"]),
        expect_status=st.lists(st.integers(min_value=0, max_value=700), max_size=3),
        expect_body=texts,
        interval=durations,
        timeout=durations,
        rise=st.integers(min_value=-1, max_value=200),
        fall=st.integers(min_value=0, max_value=5),
        port=ports,
    ),
)
persistence = optional(
    type=st.sampled_from(["none", "source-ip", "http-cookie", "app-cookie", "ssl-session-id", "x-forwarded-for", "magic"]),
    timeout=durations,
    table_size=st.sampled_from([1, "100k", "2m", 0, "lots"]),
    cookie_name=st.sampled_from(["SERVERID", "JSESSIONID", "a\nb", 'q"uote']),
)
real_servers = st.lists(
    optional(
        name=names,
        address=addresses,
        port=st.sampled_from([80, 443, None, 0, 65536]),
        weight=st.integers(min_value=-1, max_value=300),
        max_connections=st.integers(min_value=-1, max_value=100),
        backup=st.booleans(),
        state=st.sampled_from(["online", "drain", "halt", "off"]),
        encrypted=st.booleans(),
    ),
    max_size=3,
)
rules = st.lists(
    optional(
        name=names,
        match=optional(
            path_begins=st.lists(st.sampled_from(["/inference", "/a", "x", "/%%"]), max_size=2),
            host=st.lists(st.sampled_from(["pacs.example", 'a"b']), max_size=2),
            sni=st.lists(st.sampled_from(["pacs.example"]), max_size=1),
            source=st.lists(st.sampled_from(["10.0.0.0/8", "192.0.2.7", "banana"]), max_size=2),
            header=st.lists(optional(name=st.sampled_from(["X-Site", "bad header"]), value=texts), max_size=1),
        ),
        use_service=names,
        redirect=optional(location=st.sampled_from(["https://pacs.example/", "/x"]), code=st.sampled_from([301, 302, 200])),
        deny=optional(status=st.sampled_from([403, 503, 999])),
    ),
    max_size=3,
)
headers = optional(
    forwarded_for=st.booleans(),
    request=st.lists(
        optional(action=st.sampled_from(["set", "add", "delete", "nuke"]), name=st.sampled_from(["X-A", "X B"]), value=texts),
        max_size=2,
    ),
    response=st.lists(
        optional(action=st.sampled_from(["set", "delete"]), name=st.just("X-Frame-Options"), value=texts), max_size=1
    ),
)
tls = optional(
    certificates=st.sampled_from([["site.pem"], ["missing.pem"], [], "site.pem"]),
    min_version=st.sampled_from(["1.2", "1.3", "1.1"]),
    cipher_policy=st.sampled_from(["intermediate", "modern", "custom"]),
    ciphers=st.sampled_from(["ECDHE-RSA-AES128-GCM-SHA256", "x\ny"]),
    http_redirect_port=st.sampled_from([80, 8443, 0]),
    hsts=optional(max_age=st.sampled_from([0, 31536000, -5]), include_subdomains=st.booleans()),
)
services = st.lists(
    optional(
        name=names,
        mode=modes,
        listen=st.lists(optional(address=addresses, port=ports), max_size=2),
        scheduler=st.sampled_from(["weighted-round-robin", "weighted-least-connections", "source-hash", "random"]),
        persistence=persistence,
        health_check=health_checks,
        real_servers=real_servers,
        rules=rules,
        default_service=names,
        tls=tls,
        headers=headers,
        proxy_protocol=st.sampled_from(["none", "v1", "v2", "v3"]),
        transparent=st.booleans(),
        max_connections=st.integers(min_value=0, max_value=10),
        timeouts=optional(client=durations, server=durations, connect=durations),
        protocol=st.sampled_from(["tcp", "udp", "tcp+udp"]),
        fallback=optional(address=addresses, port=st.sampled_from([80, 0])),
        server_tls=optional(verify=st.sampled_from(["none", "required"]), ca_file=st.sampled_from(["ca.pem", "nope.pem"])),
        colour=st.just("blue"),
    ),
    max_size=4,
)
configs = optional(
    version=st.sampled_from([1, 1, 1, 2, "1"]),
    settings=optional(
        threads=st.integers(min_value=-1, max_value=70),
        max_connections=st.integers(min_value=0, max_value=10),
        hard_stop_after=durations,
    ),
    virtual_services=services,
)
# Beside the plausible ones, shapeless data of any kind.
anything = st.recursive(
    st.none() | st.booleans() | st.integers() | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bad-input")
    issued = self_signed("pacs.example")
    (folder / "site.pem").write_bytes(issued.cert_pem + issued.key_pem)
    (folder / "ca.pem").write_bytes(issued.cert_pem)
    return folder


def _assert_accepted_or_explained(data, folder: Path) -> None:
    loaded = validate_data(data, base_dir=folder)
    if not loaded.ok:
        assert loaded.problems, "a rejected configuration must say why"
        for problem in loaded.problems:
            assert str(problem).strip()
            assert "\n" not in str(problem)
        return
    text = render(loaded.config, HAProxyEnv(state_dir=folder / "state", base_dir=folder, cpu_count=2))
    cfg = folder / "haproxy.cfg"
    cfg.write_text(text)
    result = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"haproxy -c refused an accepted configuration:\n{yaml.safe_dump(data)}\n{result.stderr}"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=configs)
def test_plausible_configurations_are_accepted_and_render_or_are_explained(data, site_dir):
    _assert_accepted_or_explained(data, site_dir)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=anything)
def test_shapeless_input_never_raises(data, site_dir):
    _assert_accepted_or_explained(data, site_dir)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_any_text_is_loaded_or_explained(text):
    from pacslb.model import load_text

    loaded = load_text(text)
    assert loaded.ok or loaded.problems


# Valid configurations built feature by feature: every one must be accepted and pass `haproxy -c`.
@st.composite
def valid_configs(draw):
    http = draw(st.booleans())
    mode = "layer7-http" if http else "layer7-tcp"
    backends = draw(st.integers(min_value=0, max_value=3))
    check = draw(
        st.sampled_from(
            [
                {"type": "none"},
                {"type": "connect", "interval": "2s", "timeout": "1s", "rise": 1, "fall": 2},
                {"type": "http", "path": "/health", "expect_status": [200, 204], "expect_body": 'OK "100%"'},
                {"type": "https", "host": "pacs.example", "port": 8443, "method": "HEAD"},
            ]
        )
    )
    persistence_kinds = ["none", "source-ip"] + (["http-cookie", "app-cookie", "x-forwarded-for"] if http else ["ssl-session-id"])
    persistence = {"type": draw(st.sampled_from(persistence_kinds))}
    scheduler = draw(st.sampled_from(["weighted-round-robin", "weighted-least-connections", "source-hash"]))

    def servers(prefix: str, port: int | None):
        count = draw(st.integers(min_value=1, max_value=3))
        return [
            {
                "name": f"rs{i}",
                "address": draw(st.sampled_from([f"192.0.2.{i + 1}", f"2001:db8::{i + 1}", f"{prefix}{i}.example"])),
                **({"port": port} if port else {}),
                "weight": draw(st.integers(min_value=0, max_value=256)),
                "max_connections": draw(st.sampled_from([0, 100])),
                "backup": draw(st.booleans()) if i else False,
                "state": draw(st.sampled_from(["online", "drain", "halt"])),
                "encrypted": draw(st.booleans()) if http else False,
            }
            for i in range(count)
        ]

    vs: dict = {
        "name": "front",
        "mode": mode,
        "listen": [{"address": "127.0.0.1", "port": draw(st.sampled_from([8443, "9000-9002"]))}],
        "scheduler": scheduler,
        "persistence": persistence,
        "health_check": check,
        # A real server without a port takes the client's; it can be checked only with health_check.port.
        "real_servers": servers("front", draw(st.sampled_from([None, 443])) if check["type"] in ("none", "https") else 443),
        "server_tls": {"verify": draw(st.sampled_from(["none", "required"])), "ca_file": "ca.pem"},
        "proxy_protocol": draw(st.sampled_from(["none", "v1", "v2"])),
        "max_connections": draw(st.sampled_from([None, 5000])),
        "timeouts": draw(st.sampled_from([{}, {"client": "1h", "server": "30m"}])),
    }
    vs = {k: v for k, v in vs.items() if v is not None}
    if draw(st.booleans()) and persistence["type"] != "ssl-session-id":
        vs["tls"] = {
            "certificates": ["site.pem"],
            **({"http_redirect_port": 8080, "hsts": {"max_age": 600, "include_subdomains": True}} if http else {}),
        }
    if http:
        vs["headers"] = {
            "forwarded_for": draw(st.booleans()),
            "request": [{"action": "set", "name": "X-Site", "value": draw(texts.filter(lambda t: t.isprintable()))}],
            "response": [{"action": "delete", "name": "Server"}],
        }
    rules, services = [], [vs]
    for b in range(backends):
        name = f"back{b}"
        match = (
            {"path_begins": [f"/b{b}"], "host": ["pacs.example"]}
            if http
            else {"source": ["10.0.0.0/8"]}
            if "tls" in vs or b % 2
            else {"sni": [f"b{b}.example"]}
        )
        rules.append({"name": f"to_{name}", "match": match, "use_service": name})
        services.append(
            {
                "name": name,
                "mode": "backend-only",
                "health_check": check,
                "scheduler": scheduler,
                "real_servers": servers(name, 443),
                "server_tls": {"verify": "none"},
                **({"fallback": {"address": "127.0.0.1", "port": 8999}} if b == 0 else {}),
            }
        )
    if http and draw(st.booleans()):
        rules.append(
            {"name": "old", "match": {"path_ends": [".php"]}, "redirect": {"location": "https://pacs.example/", "code": 301}}
        )
    rules.append({"name": "blocked", "match": {"source": ["203.0.113.0/24"]}, "deny": {"status": 403}})
    vs["rules"] = rules
    for service in services:  # real servers named by DNS are looked up by a resolvers section (model/resolvers.py)
        if any(rs["address"].endswith(".example") for rs in service["real_servers"]):
            service["resolvers"] = "site_dns"
    return {"version": 1, "settings": {"threads": draw(st.integers(min_value=0, max_value=4))}, "virtual_services": services,
            "resolvers": [{"name": "site_dns", "nameservers": ["127.0.0.1:53"]}]}  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=valid_configs())
def test_valid_feature_combinations_render_files_haproxy_accepts(data, site_dir):
    loaded = validate_data(data, base_dir=site_dir)
    assert loaded.ok, [str(p) for p in loaded.problems]
    _assert_accepted_or_explained(data, site_dir)
