"""The WebUI's certificates page with its writes, in-process over a real Appliance whose HAProxy does not run
(web/conftest.py): admins upload (each problem beside its field, nothing stored), make self-signed certificates and
key + CSR (the signed certificate comes back without its key), delete (refused while a service uses it); viewers
and operators see the list only, and both the form posts and the API refuse their writes."""

from __future__ import annotations

import datetime as dt
import io

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from pacslb import pki
from pacslb.model.config import TLSTermination
from pacslb.web import cert_actions

WRITE_FORMS = ('action="/certificates/upload"', 'action="/certificates/self-signed"', 'action="/certificates/csr"', '/delete"')


def pem_files(**parts: bytes) -> dict:
    return {name: (f"{name}.pem", io.BytesIO(data), "application/x-pem-file") for name, data in parts.items()}


def upload(client, name: str, replace: bool = False, **parts: bytes):
    data = {"csrf_token": client.csrf, "name": name, **({"replace": "true"} if replace else {})}
    return client.post("/certificates/upload", data=data, files=pem_files(**parts), follow_redirects=False)


def field_of(html: str, form_id: str, field: str) -> str:
    """The HTML of one field of one form (its label, control and the problems shown beside it)."""
    form = html.split(f'id="{form_id}"', 1)[1].split("</form>", 1)[0]
    return (
        '<div class="field'
        + form.split(f'data-field="{field}"', 1)[0].rsplit('<div class="field', 1)[1]
        + form.split(f'data-field="{field}"', 1)[1].split('data-field="', 1)[0]
    )


def sign(csr_pem: str, ca: pki.Issued) -> bytes:
    """What the hospital's CA does with the CSR: a certificate for its key and names."""
    request = x509.load_pem_x509_csr(csr_pem.encode())
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ca.key
    cert = (x509.CertificateBuilder().subject_name(request.subject).issuer_name(ca.cert.subject)
            .public_key(request.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=90))
            .add_extension(request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value, critical=False)
            .sign(ca_key, hashes.SHA256()))  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM)


def test_viewers_and_operators_see_the_list_only_and_every_write_is_refused(web, web_app):
    certs_dir = web_app.controller.paths.certs_dir
    certs_dir.mkdir(parents=True)
    (certs_dir / "site.pem").write_bytes(pki.self_signed("pacs.example").bundle())
    good = pki.self_signed("other.example")
    for role in ("viewer", "operator"):
        client = web(role)
        page = client.get("/certificates")
        assert page.status_code == 200 and "pacs.example" in page.text and "Read only" in page.text
        assert not [form for form in WRITE_FORMS if form in page.text], page.text
        assert upload(client, "x", certificate=good.cert_pem, key=good.key_pem).status_code == 403
        for path, data in (("/certificates/self-signed", {"name": "x", "common_name": "x"}), ("/certificates/site/delete", {}),
                           ("/certificates/csr", {"name": "x", "common_name": "x"}),
                           ("/certificates/site/assign", {"service": "web"})):  # fmt: skip
            assert client.form_post(path, data).status_code == 403, path
        api = client.post("/api/v1/certificates/self-signed", json={"name": "x", "common_name": "x"},
                          headers={"X-CSRF-Token": client.csrf})  # fmt: skip
        assert api.status_code == 403
        assert client.delete("/api/v1/certificates/site", headers={"X-CSRF-Token": client.csrf}).status_code == 403
    assert sorted(p.name for p in certs_dir.iterdir()) == ["site.pem"]
    admin = web("admin").get("/certificates").text
    assert all(form in admin for form in WRITE_FORMS)


def test_an_upload_with_problems_shows_each_beside_its_field_and_stores_nothing(web, web_app):
    client = web("admin")
    certs_dir = web_app.controller.paths.certs_dir
    mine, other = pki.self_signed("pacs.example"), pki.self_signed("other.example")
    expired = pki.self_signed("old.example", days=1, now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=10))
    cases = [
        ({"certificate": b"not a PEM file", "key": mine.key_pem}, "certificate", "no PEM certificate found"),
        ({"certificate": mine.cert_pem, "key": other.key_pem}, "key", "this key does not belong to the certificate"),
        ({"certificate": expired.cert_pem, "key": expired.key_pem}, "certificate", "the certificate expired on"),
        ({"certificate": mine.cert_pem}, "key", "no private key found"),
        ({"certificate": b"x" * (cert_actions.MAX_CERTIFICATE_BYTES + 1), "key": mine.key_pem}, "certificate", "larger than 200,000 bytes"),
        ({"certificate": mine.cert_pem, "key": mine.key_pem, "chain": "é".encode() * 10}, "chain", "not a PEM file"),
    ]  # fmt: skip
    for parts, field, message in cases:
        answer = upload(client, "site", **parts)
        assert answer.status_code == 422, (field, answer.status_code)
        block = field_of(answer.text, "upload-form", field)
        assert "has-error" in block and message in block, (field, message)
        assert 'value="site"' in answer.text  # what was typed stays
    bad_name = upload(client, "../etc/x", certificate=mine.cert_pem, key=mine.key_pem)
    assert bad_name.status_code == 422 and "is not a certificate name" in bad_name.text
    assert not certs_dir.exists() or not list(certs_dir.iterdir())
    assert upload(client, "site", certificate=mine.cert_pem, key=mine.key_pem).status_code == 303
    page = client.get("/certificates").text
    assert "certificate site stored" in page and 'data-certificate="site"' in page
    again = upload(client, "site", certificate=other.cert_pem, key=other.key_pem)
    assert again.status_code == 422 and "tick &#39;replace&#39;" in again.text
    assert upload(client, "site", replace=True, certificate=other.cert_pem, key=other.key_pem).status_code == 303
    assert "other.example" in client.get("/certificates").text
    actions = [(e.action, e.outcome) for e in web_app.auth.audit_log.list(limit=100)]
    assert ("certificate.create", "invalid") in actions and ("certificate.replace", "applied") in actions


def test_self_signed_and_a_csr_whose_signed_certificate_comes_back_without_its_key(web, web_app):
    client = web("admin")
    certs_dir = web_app.controller.paths.certs_dir
    made = client.form_post("/certificates/self-signed", {"name": "lab", "common_name": "lab.example", "sans": "lab2.example, 127.0.0.9",
                                                           "days": "30", "key_type": "ec"})  # fmt: skip
    assert made.status_code == 303
    page = client.get("/certificates").text
    assert "lab.example" in page and "127.0.0.9" in page and "self-signed" in page
    bad = client.form_post("/certificates/self-signed", {"name": "lab", "common_name": "", "days": "0"})
    assert bad.status_code == 422
    for field in ("name", "common_name", "days"):
        assert "has-error" in field_of(bad.text, "self-signed-form", field), field

    assert (
        client.form_post(
            "/certificates/csr", {"name": "wfc", "common_name": "wfc.example", "organization": "Hospital"}
        ).status_code
        == 303
    )
    assert (certs_dir / "wfc.key").stat().st_mode & 0o777 == 0o600
    page = client.get("/certificates").text
    assert "Requests waiting for their certificate" in page and "BEGIN CERTIFICATE REQUEST" in page
    download = client.get("/certificates/wfc/csr")
    assert download.status_code == 200 and 'filename="wfc.csr"' in download.headers["content-disposition"]
    assert web("viewer").get("/certificates/wfc/csr").text == download.text  # a CSR holds no secret
    request = x509.load_pem_x509_csr(download.content)
    assert request.subject.rfc4514_string() == "CN=wfc.example,O=Hospital" and request.is_signature_valid
    signed = sign(download.text, pki.make_ca("Hospital CA"))
    assert upload(client, "wfc", certificate=signed).status_code == 303  # no key: the one kept here
    assert sorted(p.name for p in certs_dir.iterdir()) == ["lab.pem", "wfc.pem"]
    assert "Requests waiting" not in client.get("/certificates").text
    assert client.get("/certificates/wfc/csr").status_code == 404


def test_delete_asks_first_and_is_refused_while_a_service_uses_the_certificate(web, web_app):
    client = web("admin")
    certs_dir = web_app.controller.paths.certs_dir
    certs_dir.mkdir(parents=True)
    for name in ("used", "spare"):
        (certs_dir / f"{name}.pem").write_bytes(pki.self_signed(f"{name}.example").bundle())
    running = web_app.controller.changes.running
    vs = running.config.virtual_services[0].model_copy(update={"tls": TLSTermination(certificates=[str(certs_dir / "used.pem")])})
    running.config = running.config.model_copy(update={"virtual_services": [vs, *running.config.virtual_services[1:]]})
    page = client.get("/certificates").text
    assert 'data-confirm="Delete the certificate used' in page and "web uses it, so it will be refused" in page
    refused = client.form_post("/certificates/used/delete")
    assert refused.status_code == 303
    assert (
        "certificate used was not deleted: web uses it for TLS; assign another certificate first"
        in client.get("/certificates").text
    )
    assert (certs_dir / "used.pem").exists()
    assert client.form_post("/certificates/spare/delete").status_code == 303
    assert not (certs_dir / "spare.pem").exists() and "certificate spare deleted" in client.get("/certificates").text
    actions = [(e.action, e.outcome, e.target) for e in web_app.auth.audit_log.list(limit=100)]
    assert ("certificate.delete", "refused", "used") in actions and ("certificate.delete", "applied", "spare") in actions


def test_an_assign_based_on_an_old_revision_or_to_no_service_changes_nothing_and_says_why(web, web_app):
    client = web("admin")
    certs_dir = web_app.controller.paths.certs_dir
    certs_dir.mkdir(parents=True)
    (certs_dir / "site.pem").write_bytes(pki.self_signed("site.example").bundle())
    store = web_app.controller.changes.store
    current = store.current_id()
    page = client.get("/certificates").text
    assert f'name="base_revision" value="{current}"' in page and '<option value="web">' in page
    assert '<option value="only">' not in page  # a backend-only service terminates no TLS
    stale = client.form_post("/certificates/site/assign", {"service": "web", "base_revision": str(current + 5)})
    assert stale.status_code == 303
    shown = client.get("/certificates").text
    assert "flash-error" in shown and f"revision {current + 5}" in shown
    assert client.form_post("/certificates/site/assign", {"service": "nope", "base_revision": str(current)}).status_code == 303
    assert "there is no virtual service nope" in client.get("/certificates").text
    assert store.current_id() == current
