"""The backup's format (backup/archive.py, backup/crypto.py): a round trip, the passphrase, and a hostile
archive refused by name: a newer format, a changed member, traversal, links, huge members, too many members."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest

from pacslb.backup import archive, crypto
from pacslb.backup.archive import BackupError, pack, unpack
from pacslb.backup.crypto import BackupCryptoError

MEMBERS = {"state/revisions.sqlite": b"SQLite format 3\0" + b"x" * 100, "certificates/0.pem": b"-----BEGIN CERTIFICATE-----\n"}
PASSPHRASE = "correct horse battery staple"


def raw_tar(entries: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb") as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for info, data in entries:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buffer.getvalue()


def manifest_for(members: dict[str, bytes], **extra) -> bytes:
    listed = {n: {"sha256": archive.sha256(d), "size": len(d)} for n, d in members.items()}
    return json.dumps({"format": archive.FORMAT, "format_version": archive.FORMAT_VERSION, "members": listed, **extra}).encode()


def entry(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info, data


def test_round_trip_keeps_every_member_and_the_manifest():
    found = unpack(pack(MEMBERS, {"revision": 7}))
    assert found.members == MEMBERS
    assert found.manifest["revision"] == 7 and found.manifest["format_version"] == archive.FORMAT_VERSION
    assert set(found.manifest["members"]) == set(MEMBERS)


def test_encrypted_round_trip_and_a_wrong_passphrase():
    sealed = pack(MEMBERS, {}, PASSPHRASE)
    assert sealed.startswith(crypto.MAGIC) and b"SQLite" not in sealed
    assert unpack(sealed, PASSPHRASE).members == MEMBERS
    with pytest.raises(BackupCryptoError, match="passphrase is wrong"):
        unpack(sealed, "another passphrase, wrong")
    with pytest.raises(BackupCryptoError, match="give its passphrase"):
        unpack(sealed)


def test_a_passphrase_out_of_bounds_is_refused():
    with pytest.raises(BackupCryptoError, match="at least 10"):
        pack(MEMBERS, {}, "short")
    with pytest.raises(BackupCryptoError, match="at most 1024"):
        pack(MEMBERS, {}, "x" * 1025)
    with pytest.raises(BackupCryptoError, match="not valid text"):
        pack(MEMBERS, {}, "long enough \ud800 passphrase")
    with pytest.raises(BackupCryptoError, match="passphrase is wrong"):
        unpack(pack(MEMBERS, {}, PASSPHRASE), "\ud800" * 12)


def test_an_encrypted_backup_changed_anywhere_is_refused():
    sealed = bytearray(pack(MEMBERS, {}, PASSPHRASE))
    for where in (len(sealed) // 2, len(sealed) - 1):
        changed = bytearray(sealed)
        changed[where] ^= 1
        with pytest.raises(BackupCryptoError, match="changed"):
            unpack(bytes(changed), PASSPHRASE)
    header = bytes(sealed).replace(b'"n": 32768', b'"n": 16384', 1)  # a weaker KDF in the header
    with pytest.raises(BackupCryptoError):
        unpack(header, PASSPHRASE)


def test_hostile_scrypt_parameters_are_refused_before_any_work():
    sealed = pack(MEMBERS, {}, PASSPHRASE).replace(b'"n": 32768', b'"n": 1073741824', 1)
    with pytest.raises(BackupCryptoError, match="out of bounds"):
        unpack(sealed, PASSPHRASE)


def test_a_changed_member_fails_its_hash():
    members = dict(MEMBERS)
    data = raw_tar([entry(archive.MANIFEST, manifest_for(members)), entry("state/revisions.sqlite", b"changed"),
                    entry("certificates/0.pem", members["certificates/0.pem"])])  # fmt: skip
    with pytest.raises(BackupError, match="state/revisions.sqlite: its SHA-256 differs"):
        unpack(data)


def test_a_newer_format_is_refused_with_what_to_do():
    data = raw_tar([entry(archive.MANIFEST, manifest_for({}, format_version=archive.FORMAT_VERSION + 1, pacslb_version="9.0"))])
    with pytest.raises(BackupError, match=r"format_version 2 was written by a newer pacslb \(9.0\).*reads up to version 1"):
        unpack(data)


@pytest.mark.parametrize(
    "bad, message",
    [
        (entry("../etc/passwd", b"x"), "not a plain relative name"),
        (entry("/etc/passwd", b"x"), "not a plain relative name"),
        (entry("state/../../x", b"x"), "not a plain relative name"),
        (entry("state/link", kind=tarfile.SYMTYPE, linkname="/etc/shadow"), "not a regular file"),
        (entry("state/hard", kind=tarfile.LNKTYPE, linkname="manifest.json"), "not a regular file"),
        (entry("state/dir", kind=tarfile.DIRTYPE), "not a regular file"),
        (entry("state/fifo", kind=tarfile.FIFOTYPE), "not a regular file"),
    ],
)
def test_traversal_links_and_special_members_are_refused(bad, message):
    with pytest.raises(BackupError, match=message):
        unpack(raw_tar([entry(archive.MANIFEST, manifest_for({})), bad]))


def test_unlisted_missing_and_twice_present_members_are_refused():
    with pytest.raises(BackupError, match="state/extra: not listed"):
        unpack(raw_tar([entry(archive.MANIFEST, manifest_for({})), entry("state/extra", b"x")]))
    with pytest.raises(BackupError, match="state/gone: listed in manifest.json but missing"):
        unpack(raw_tar([entry(archive.MANIFEST, manifest_for({"state/gone": b"x"}))]))
    with pytest.raises(BackupError, match="present twice"):
        unpack(raw_tar([entry(archive.MANIFEST, manifest_for({"a": b"x"})), entry("a", b"x"), entry("a", b"x")]))
    with pytest.raises(BackupError, match="no manifest.json"):
        unpack(raw_tar([entry("a", b"x")]))


def test_size_and_count_limits(monkeypatch):
    monkeypatch.setattr(archive, "MAX_MEMBER_BYTES", 1000)
    with pytest.raises(BackupError, match="state/big: 1001 bytes, more than the 1000 allowed"):
        unpack(raw_tar([entry(archive.MANIFEST, manifest_for({})), entry("state/big", b"\0" * 1001)]))
    monkeypatch.setattr(archive, "MAX_TOTAL_BYTES", 1500)
    many = [entry(f"m{i}", b"\0" * 900) for i in range(2)]
    with pytest.raises(BackupError, match="add up to more than 1500"):
        unpack(raw_tar([entry(archive.MANIFEST, manifest_for({})), *many]))
    monkeypatch.setattr(archive, "MAX_MEMBERS", 3)
    with pytest.raises(BackupError, match="more than 3 members"):
        unpack(raw_tar([entry(archive.MANIFEST, manifest_for({}))] + [entry(f"n{i}", b"") for i in range(3)]))
    with pytest.raises(BackupError, match="at most 2"):
        pack({f"n{i}": b"" for i in range(3)}, {})
    monkeypatch.setattr(archive, "MAX_BACKUP_BYTES", 100)
    with pytest.raises(BackupError, match="at most 100"):
        unpack(b"\x1f\x8b" + b"\0" * 200)


def test_not_a_backup_and_a_damaged_one():
    with pytest.raises(BackupError, match="not a pacslb backup"):
        unpack(b"hello")
    whole = pack(MEMBERS, {})
    with pytest.raises(BackupError, match="damaged"):
        unpack(whole[: len(whole) // 2])
    with pytest.raises(BackupError, match="not encrypted, but a passphrase"):
        unpack(whole, PASSPHRASE)


def test_a_byte_changed_anywhere_is_refused_as_a_backup_error():
    """Every position of a plain backup, flipped: BackupError (never a zlib, tar or JSON exception), or, for the
    bytes gzip does not check (its header's time and OS), exactly the same contents."""
    members = {**MEMBERS, "state/users.sqlite": bytes(range(256)) * 8}
    whole = pack(members, {"revision": 1})
    refused = 0
    for where in range(len(whole)):
        changed = bytearray(whole)
        changed[where] ^= 0x40
        try:
            assert unpack(bytes(changed)).members == members, f"byte {where} changed the contents unnoticed"
        except BackupError:
            refused += 1
    assert refused >= len(whole) - 16  # the rest hold no content: the gzip header (time, flags, OS), deflate padding


def test_the_manifest_is_bounded(monkeypatch):
    monkeypatch.setattr(archive, "MAX_MANIFEST_BYTES", 50)
    with pytest.raises(BackupError, match="manifest.json: .* more than the 50 allowed"):
        unpack(pack(MEMBERS, {}))


def test_a_backup_upload_gets_its_own_body_limit_with_credentials_only():
    from pacslb.api.limits import LOGIN_LIMIT, RESTORE_LIMIT, WRITE_LIMIT, limit_for

    key = [(b"authorization", b"Bearer x")]
    assert limit_for({"path": "/api/v1/restore", "headers": key}) == RESTORE_LIMIT == 64 * 1024 * 1024
    assert limit_for({"path": "/backup/restore", "headers": [(b"cookie", b"pacslb_session=abc")]}) == RESTORE_LIMIT
    assert limit_for({"path": "/api/v1/restore", "headers": []}) == LOGIN_LIMIT
    assert limit_for({"path": "/api/v1/config", "headers": key}) == WRITE_LIMIT


def test_a_pax_header_declaring_more_than_the_limits_is_refused_before_it_is_read(monkeypatch):
    monkeypatch.setattr(archive, "MAX_TOTAL_BYTES", 1000)
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb") as gz, tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("state/a")
        info.pax_headers = {"comment": "x" * 5_000_000}  # tar reads a pax header whole, whatever it declares
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(BackupError, match="unpacks to more than"):
        unpack(buffer.getvalue())
