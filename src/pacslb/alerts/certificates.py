"""The certificates to watch for expiry, and when each expires.

Watched: every certificate a virtual service terminates TLS with, the management certificate (the configured
one, or the self-signed one in the state directory), and the HA peer's certificate. CA files are not: a bundle
holds many certificates, some long expired, that are never used.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from ..model import Config
from ..model.files import MAX_PEM_BYTES, named_files, resolve
from . import events
from .events import Alert

DAY_S = 86_400


def watched(config: Config, base_dir: Path, default_management: Path) -> list[tuple[str, Path]]:
    """(field, file) of every certificate to watch, in the configuration's order."""
    found = [(f.field, resolve(f.value, base_dir)) for f in named_files(config)
             if f.kind == "certificate" and not f.field.endswith(".ca_file")]  # fmt: skip
    if config.settings.management.enabled and config.settings.management.certificate is None:
        found.append(("settings.management (self-signed)", default_management))
    return found


def not_after(pem: bytes) -> float:
    """When the first certificate of a PEM file expires (seconds since the epoch). Raises ValueError."""
    return x509.load_pem_x509_certificate(pem).not_valid_after_utc.timestamp()


def expiring(files: list[tuple[str, Path]], days: int, now: float) -> list[Alert]:
    """An alert for each watched certificate that expires within `days` (or has expired). Files that cannot be
    read are skipped: validation and the engines say so already, and a missing self-signed one is made at start."""
    found: list[Alert] = []
    for label, path in files:
        try:
            if path.stat().st_size > MAX_PEM_BYTES:
                continue
            expires = not_after(path.read_bytes())
        except (OSError, ValueError):
            continue
        left = expires - now
        if left <= days * DAY_S:
            found.append(events.certificate_expiring(label, str(path), expires, int(left // DAY_S), now))
    return found
