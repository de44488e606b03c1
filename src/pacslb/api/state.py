"""The management API's first admin and its files in the state directory (named by StatePaths)."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from ..paths import StatePaths
from ..store.users import UserStore, new_password

log = logging.getLogger("pacslb.api")

FIRST_ADMIN = "admin"


def users_db(root: Path) -> Path:
    """Users and API keys (SQLite, mode 0600)."""
    return StatePaths(root).users_db


def audit_db(root: Path) -> Path:
    """The audit log (SQLite, mode 0600)."""
    return StatePaths(root).audit_log


def initial_password_file(root: Path) -> Path:
    """The first admin's one-time password (mode 0600), removed once that password is changed."""
    return StatePaths(root).initial_admin_password


def management_dir(root: Path) -> Path:
    return StatePaths(root).management_dir


def self_signed_certificate(root: Path) -> Path:
    """The management API's own certificate and key, made at first start when none is configured."""
    return StatePaths(root).management_certificate


def url_file(root: Path) -> Path:
    """The address the management API listens on (https://ADDRESS:PORT/), written once it listens."""
    return StatePaths(root).management_url


def controller_log(root: Path) -> Path:
    """The controller's log file (rotated), beside its stderr."""
    return StatePaths(root).controller_log


def ensure_first_admin(users: UserStore, root: Path) -> str | None:
    """At first start (no user yet): create `admin` with a random password, write it to
    initial_password_file (mode 0600) and return it; None when users exist already. It is a one-time password:
    admin must change it at the first login before anything else (must_change_password)."""
    if users.count():
        return None
    password = new_password()
    users.add(FIRST_ADMIN, password, "admin", must_change_password=True)
    path = initial_password_file(root)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    os.chmod(path, 0o600)
    return password


def forget_initial_password(root: Path, username: str) -> None:
    """The first admin's password was changed: its file no longer tells the truth."""
    if username == FIRST_ADMIN:
        with contextlib.suppress(FileNotFoundError):
            initial_password_file(root).unlink()


def port_is_free(address: str, port: int) -> bool:
    import socket

    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


def access_lines(root: Path) -> list[str]:
    """What `pacslb demo` prints about the WebUI: its address and the admin's credentials."""
    try:
        url = url_file(root).read_text().strip()
    except FileNotFoundError:
        return ["WebUI and API: not listening yet (see the log: settings.management)"]
    try:
        password = initial_password_file(root).read_text().strip()
        who = f"user {FIRST_ADMIN}, password {password}  (one-time: the WebUI asks for your own at the first login)"
    except FileNotFoundError:
        who = f"user {FIRST_ADMIN}, with the password set by 'pacslb user passwd {FIRST_ADMIN}'"
    return [
        f"WebUI and API: {url}  (self-signed certificate: your browser warns once)",
        f"  log in as {who}",
        f"  API docs: {url}api/docs   OpenAPI: {url}api/openapi.json",
    ]
