"""Unit tests of certificate validation (pure: the time is an argument) and of the metrics text."""

from __future__ import annotations

import datetime as dt

import pytest

from pacslb import pki
from pacslb.api.certs import CertificateProblems, check_name, describe, validate_bundle
from pacslb.api.metrics import ControllerMetrics

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def chain():
    root = pki.make_ca("root CA", now=NOW - dt.timedelta(days=10))
    leaf = pki.issue(root, "pacs.example.org", ["pacs.example.org", "192.0.2.10"], days=100, now=NOW - dt.timedelta(days=10))
    return root, leaf


def paths(exc: pytest.ExceptionInfo) -> list[str]:
    return [p["path"] for p in exc.value.problems]


def test_a_good_bundle_is_ordered_certificate_chain_key(chain):
    root, leaf = chain
    bundle, info = validate_bundle(leaf.cert_pem.decode(), leaf.key_pem.decode(), root.cert_pem.decode(), now=NOW)
    assert bundle.index(leaf.cert_pem) < bundle.index(root.cert_pem) < bundle.index(b"PRIVATE KEY")
    assert info["subject"] == "CN=pacs.example.org,O=pacslb"
    assert info["sans"] == ["pacs.example.org", "192.0.2.10"]
    assert info["issuer"] == "CN=root CA,O=pacslb"
    assert info["days_left"] == 89 and not info["expired"] and info["chain_length"] == 1 and info["has_key"]


def test_key_in_the_certificate_field_or_from_a_csr(chain):
    root, leaf = chain
    bundle, _ = validate_bundle((leaf.cert_pem + leaf.key_pem).decode(), None, now=NOW)
    assert leaf.key_pem in bundle
    bundle, _ = validate_bundle(leaf.cert_pem.decode(), None, now=NOW, key_file=leaf.key_pem)
    assert leaf.key_pem in bundle


def test_problems_name_their_field(chain):
    root, leaf = chain
    other = pki.self_signed("other", ["127.0.0.1"], now=NOW)
    with pytest.raises(CertificateProblems) as wrong_key:
        validate_bundle(leaf.cert_pem.decode(), other.key_pem.decode(), now=NOW)
    assert paths(wrong_key) == ["key"] and "does not belong" in str(wrong_key.value)
    with pytest.raises(CertificateProblems) as no_key:
        validate_bundle(leaf.cert_pem.decode(), None, now=NOW)
    assert paths(no_key) == ["key"]
    with pytest.raises(CertificateProblems) as expired:
        validate_bundle(leaf.cert_pem.decode(), leaf.key_pem.decode(), now=NOW + dt.timedelta(days=200))
    assert "expired" in expired.value.problems[0]["message"]
    with pytest.raises(CertificateProblems) as early:
        validate_bundle(leaf.cert_pem.decode(), leaf.key_pem.decode(), now=NOW - dt.timedelta(days=30))
    assert "not valid before" in early.value.problems[0]["message"]
    with pytest.raises(CertificateProblems) as order:
        validate_bundle(leaf.cert_pem.decode(), leaf.key_pem.decode(), (other.cert_pem + root.cert_pem).decode(), now=NOW)
    assert paths(order)[0] == "chain[0]" and "out of order" in order.value.problems[0]["message"]
    with pytest.raises(CertificateProblems) as nothing:
        validate_bundle("not a certificate", None, now=NOW)
    assert paths(nothing) == ["certificate"]
    with pytest.raises(CertificateProblems) as damaged:
        validate_bundle("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", None, now=NOW)
    assert "damaged" in str(damaged.value)


def test_a_forged_issuer_name_is_caught(chain):
    root, leaf = chain
    impostor = pki.make_ca("root CA", now=NOW - dt.timedelta(days=10))  # same name, another key
    with pytest.raises(CertificateProblems) as forged:
        validate_bundle(leaf.cert_pem.decode(), leaf.key_pem.decode(), impostor.cert_pem.decode(), now=NOW)
    assert "did not sign" in str(forged.value)


def test_names_are_plain_file_names():
    assert check_name("wfc-2026.pem") == "wfc-2026"
    for bad in ("../etc/passwd", "", "a b", "x.key", "-lead"):
        with pytest.raises(CertificateProblems):
            check_name(bad)


def test_describe_counts_days_left(chain):
    _, leaf = chain
    assert describe(leaf.bundle(), now=NOW + dt.timedelta(days=100))["expired"] is True


def test_metrics_text():
    metrics = ControllerMetrics(started_at=1.0)
    metrics.change({"outcome": "applied", "engine": {"method": "reload"}, "timings": {"total": 0.25}})
    metrics.change({"outcome": "invalid", "plan": None})
    metrics.login_failed()
    metrics.request(200)
    metrics.request(404)
    text = metrics.render({"pacslb_extra": ("a gauge", "gauge", [({"vs": 'a"b'}, 2)])})
    assert 'pacslb_changes_total{method="reload",outcome="applied"} 1' in text
    assert 'pacslb_changes_total{method="none",outcome="invalid"} 1' in text
    assert "pacslb_apply_duration_seconds_sum 0.250000" in text and "pacslb_apply_duration_seconds_count 1" in text
    assert "pacslb_logins_failed_total 1" in text
    assert 'pacslb_api_requests_total{code="4xx"} 1' in text
    assert 'pacslb_extra{vs="a\\"b"} 2' in text
    for line in text.splitlines():
        assert line.startswith("#") or line.split(" ")[0].startswith("pacslb_")
