"""The optional passphrase of a backup: the whole archive sealed with AES-256-GCM under a key from scrypt.

An encrypted backup is

    b"pacslb-backup-encrypted 1\\n" + header (one line of JSON) + b"\\n" + ciphertext (with its 16-byte GCM tag)

The header says the KDF and its parameters, the salt and the nonce; it is authenticated as the GCM's
associated data, so a changed parameter is refused as a tampered backup. scrypt (N=2^15, r=8, p=1: about
32 MiB and a tenth of a second here) makes each guess of the passphrase cost; the parameters read from a
header are bounded, so that a hostile backup cannot make a restore allocate gigabytes.
"""

from __future__ import annotations

import base64
import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

MAGIC = b"pacslb-backup-encrypted 1\n"
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
MAX_SCRYPT_N = 2**17  # read from a header: at most 128 MiB of scrypt memory
MAX_HEADER_BYTES = 1024
MIN_PASSPHRASE_LENGTH = 10
MAX_PASSPHRASE_LENGTH = 1024


class BackupCryptoError(ValueError):
    """The passphrase is wrong, the backup was changed, or the passphrase cannot be used; the message says which."""


def check_passphrase(passphrase: str) -> str:
    """The passphrase when it may seal a backup; BackupCryptoError naming the rule otherwise."""
    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise BackupCryptoError(f"the passphrase is too short: use at least {MIN_PASSPHRASE_LENGTH} characters")
    if len(passphrase) > MAX_PASSPHRASE_LENGTH:
        raise BackupCryptoError(f"the passphrase is too long: use at most {MAX_PASSPHRASE_LENGTH} characters")
    try:
        passphrase.encode("utf-8")
    except UnicodeEncodeError:
        raise BackupCryptoError("the passphrase is not valid text (a lone surrogate): type it again") from None
    return passphrase


def _key(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def is_encrypted(data: bytes) -> bool:
    return data.startswith(MAGIC)


def encrypt(plain: bytes, passphrase: str) -> bytes:
    """`plain` sealed under the passphrase (a fresh salt and nonce each time)."""
    check_passphrase(passphrase)
    salt, nonce = os.urandom(16), os.urandom(12)
    header = json.dumps({"kdf": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "cipher": "AES-256-GCM",
                         "salt": base64.b64encode(salt).decode(), "nonce": base64.b64encode(nonce).decode()},
                        sort_keys=True).encode()  # fmt: skip
    aad = MAGIC + header + b"\n"
    return aad + AESGCM(_key(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)).encrypt(nonce, plain, aad)


def decrypt(data: bytes, passphrase: str | None) -> bytes:
    """The archive inside an encrypted backup; BackupCryptoError when the passphrase is missing or wrong, or
    when the backup was changed (AES-GCM cannot tell these apart: both fail the tag)."""
    if passphrase is None:
        raise BackupCryptoError("the backup is encrypted: give its passphrase (--passphrase-file FILE)")
    if len(passphrase) > MAX_PASSPHRASE_LENGTH:
        raise BackupCryptoError("the passphrase is wrong, or the backup was changed since it was made")
    try:
        passphrase.encode("utf-8")
    except UnicodeEncodeError:
        raise BackupCryptoError("the passphrase is wrong, or the backup was changed since it was made") from None
    end = data.find(b"\n", len(MAGIC), len(MAGIC) + MAX_HEADER_BYTES)
    if end < 0:
        raise BackupCryptoError("the backup's encryption header is damaged (no header line)")
    try:
        header = json.loads(data[len(MAGIC) : end])
        salt, nonce = base64.b64decode(header["salt"]), base64.b64decode(header["nonce"])
        n, r, p = int(header["n"]), int(header["r"]), int(header["p"])
        kdf, cipher = header["kdf"], header["cipher"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupCryptoError(f"the backup's encryption header is damaged: {exc}") from None
    if kdf != "scrypt" or cipher != "AES-256-GCM" or len(nonce) != 12 or not 8 <= len(salt) <= 64:
        raise BackupCryptoError(f"the backup is sealed with {kdf}/{cipher}, which this pacslb does not read")
    if not (2 <= n <= MAX_SCRYPT_N and n & (n - 1) == 0 and 1 <= r <= 16 and 1 <= p <= 4):
        raise BackupCryptoError(f"the backup's scrypt parameters are out of bounds (n={n}, r={r}, p={p})")
    aad = data[: end + 1]
    try:
        return AESGCM(_key(passphrase, salt, n, r, p)).decrypt(nonce, data[end + 1 :], aad)
    except InvalidTag:
        raise BackupCryptoError("the passphrase is wrong, or the backup was changed since it was made") from None
