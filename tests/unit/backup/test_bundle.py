"""The support bundle's redaction (backup/bundle.py, pure) and its limits."""

from __future__ import annotations

import pytest

from pacslb import pki
from pacslb.backup.bundle import check_hours, redact

KEY = pki.self_signed("x").key_pem


def test_every_kind_of_secret_is_redacted():
    text = (b"GET /?p=s3cret-value HTTP/1.1\npassword: 'Quoted Secret'\n\"password\": \"json secret\"\n"
            b"Authorization: Bearer pacslb_0123456789ab_AbCdEfGhIjKlMnOpQrStUv\n" + KEY)  # fmt: skip
    found = redact(text, ["s3cret-value"], {"password"})
    for secret in (b"s3cret-value", b"Quoted Secret", b"json secret", b"AbCdEfGhIjKlMnOpQrStUv", KEY.split(b"\n")[1]):
        assert secret not in found
    assert found.count(b"********") == 5 and b"GET /?p=******** HTTP/1.1" in found


def test_the_longest_secret_goes_first_and_short_values_are_left():
    assert redact(b"abcdefgh abcd", ["abcd", "abcdefgh"]) == b"******** ********"
    assert redact(b"a ab abc", ["ab"]) == b"a ab abc"  # under MIN_SECRET_LENGTH: would redact half the bundle


@pytest.mark.parametrize("hours", [0, -1, 24 * 30 + 1])
def test_hours_out_of_range(hours):
    with pytest.raises(ValueError, match="hours: .* is out of range: give 1 to 720"):
        check_hours(hours)
