"""Users of the management API and WebUI, and their API keys, in SQLite (<state>/users.sqlite, mode 0600).

Passwords are hashed with argon2id (argon2-cffi); API keys are long random secrets shown once and
kept as their SHA-256 (a key has 256 bits of entropy, so a fast hash is enough and checking a key on
every request stays cheap). The CLI (`pacslb user ...`) and the running controller use the same file;
each call is one SQLite transaction, so they never step on each other.

Roles: admin (everything), operator (drain / halt / online and weights, and reads), viewer (reads).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from . import db
from .revisions import StoreError

ROLES = ("admin", "operator", "viewer")
SCHEMA_VERSION = 1
MIN_PASSWORD_LENGTH = 10
API_KEY_PREFIX = "pacslb_"
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    username      TEXT PRIMARY KEY,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    password_hash TEXT NOT NULL,
    created_at    REAL NOT NULL,
    changed_at    REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    id          TEXT PRIMARY KEY,
    username    TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at  REAL NOT NULL,
    last_used   REAL
)
"""

# argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane) rather than the library's 64 MiB: every
# login attempt allocates this much, and an appliance that takes several at once must not balloon
# (64 MiB put the controller's peak at 130 MB even for True PACS). Login throttling bounds guessing.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


class UserError(ValueError):
    """A user cannot be added or changed as asked; the message says why and what to do."""


@dataclass(frozen=True)
class User:
    username: str
    role: str
    created_at: float
    changed_at: float

    def as_dict(self) -> dict:
        return {"username": self.username, "role": self.role, "created_at": self.created_at, "changed_at": self.changed_at}


@dataclass(frozen=True)
class ApiKey:
    id: str
    username: str
    name: str
    created_at: float
    last_used: float | None

    def as_dict(self) -> dict:
        return {"id": self.id, "username": self.username, "name": self.name, "created_at": self.created_at,
                "last_used": self.last_used}  # fmt: skip


def check_username(username: str) -> str:
    if not isinstance(username, str) or not USERNAME_PATTERN.match(username):
        raise UserError(
            f"{username!r} is not a valid user name: 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit"
        )
    return username


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UserError(f"{role!r} is not a role: choose one of {', '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"the password is too short: use at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1024:
        raise UserError("the password is too long: use at most 1024 characters")
    return password


def new_password() -> str:
    """A random password, easy to copy (URL-safe characters, 120 bits)."""
    return secrets.token_urlsafe(15)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class UserStore:
    """Users and API keys. Every method is one transaction (blocking; call from a thread in async code)."""

    def __init__(self, path: Path, clock=time.time) -> None:
        self.path = Path(path)
        self.clock = clock
        db.create(self.path, SCHEMA, SCHEMA_VERSION)
        # a dummy hash to verify against for unknown users: a login for a missing user costs as much as a wrong password
        self._dummy = _hasher.hash(secrets.token_hex(16))

    # --- users -----------------------------------------------------------------------------------

    def add(self, username: str, password: str, role: str) -> User:
        check_username(username), check_role(role), check_password(password)
        digest = _hasher.hash(password)
        now = self.clock()
        with db.transaction(self.path) as conn:
            if conn.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone():
                raise UserError(f"user {username} exists already: change it with 'pacslb user passwd {username}'")
            conn.execute(
                "INSERT INTO users (username, role, password_hash, created_at, changed_at) VALUES (?, ?, ?, ?, ?)",
                (username, role, digest, now, now),
            )
        return User(username, role, now, now)

    def get(self, username: str) -> User | None:
        with db.transaction(self.path, write=False) as conn:
            row = conn.execute(
                "SELECT username, role, created_at, changed_at FROM users WHERE username = ?", (username,)
            ).fetchone()
        return User(*row) if row else None

    def list(self) -> list[User]:
        with db.transaction(self.path, write=False) as conn:
            rows = conn.execute("SELECT username, role, created_at, changed_at FROM users ORDER BY username").fetchall()
        return [User(*row) for row in rows]

    def count(self) -> int:
        with db.transaction(self.path, write=False) as conn:
            return conn.execute("SELECT COUNT(*) FROM users").fetchone()[0]

    def set_password(self, username: str, password: str) -> None:
        check_password(password)
        digest = _hasher.hash(password)
        with db.transaction(self.path) as conn:
            done = conn.execute(
                "UPDATE users SET password_hash = ?, changed_at = ? WHERE username = ?", (digest, self.clock(), username)
            ).rowcount
        if not done:
            raise UserError(f"there is no user {username}: see 'pacslb user list'")

    def set_role(self, username: str, role: str) -> None:
        check_role(role)
        with db.transaction(self.path) as conn:
            row = conn.execute("SELECT role FROM users WHERE username = ?", (username,)).fetchone()
            if row is None:
                raise UserError(f"there is no user {username}: see 'pacslb user list'")
            if row[0] == "admin" and role != "admin" and self._admins(conn) == 1:
                raise UserError(f"{username} is the last admin: make another user admin first")
            conn.execute("UPDATE users SET role = ?, changed_at = ? WHERE username = ?", (role, self.clock(), username))

    def delete(self, username: str) -> None:
        with db.transaction(self.path) as conn:
            row = conn.execute("SELECT role FROM users WHERE username = ?", (username,)).fetchone()
            if row is None:
                raise UserError(f"there is no user {username}: see 'pacslb user list'")
            if row[0] == "admin" and self._admins(conn) == 1:
                raise UserError(f"{username} is the last admin: add another admin first ('pacslb user add NAME --role admin')")
            conn.execute("DELETE FROM users WHERE username = ?", (username,))

    @staticmethod
    def _admins(conn) -> int:
        return conn.execute("SELECT COUNT(*) FROM users WHERE role = 'admin'").fetchone()[0]

    def verify(self, username: str, password: str) -> User | None:
        """The user when the password is right; None otherwise (same cost whether the user exists or not)."""
        with db.transaction(self.path, write=False) as conn:
            row = conn.execute(
                "SELECT username, role, created_at, changed_at, password_hash FROM users WHERE username = ?", (username,)
            ).fetchone()
        stored = row[4] if row else self._dummy
        try:
            _hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if row is None:
            return None
        if _hasher.check_needs_rehash(stored):
            self.set_password(username, password)
        return User(*row[:4])

    # --- API keys --------------------------------------------------------------------------------

    def add_api_key(self, username: str, name: str = "") -> tuple[ApiKey, str]:
        """A new key for `username`: (its record, the secret token to show once). The token is never stored."""
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        token = f"{API_KEY_PREFIX}{key_id}_{secret}"
        now = self.clock()
        with db.transaction(self.path) as conn:
            if not conn.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone():
                raise UserError(f"there is no user {username}: see 'pacslb user list'")
            conn.execute(
                "INSERT INTO api_keys (id, username, name, secret_hash, created_at) VALUES (?, ?, ?, ?, ?)",
                (key_id, username, name[:200], _sha256(secret), now),
            )
        return ApiKey(key_id, username, name[:200], now, None), token

    def api_keys(self, username: str | None = None) -> list[ApiKey]:
        query = "SELECT id, username, name, created_at, last_used FROM api_keys"
        with db.transaction(self.path, write=False) as conn:
            if username is None:
                rows = conn.execute(query + " ORDER BY created_at").fetchall()
            else:
                rows = conn.execute(query + " WHERE username = ? ORDER BY created_at", (username,)).fetchall()
        return [ApiKey(*row) for row in rows]

    def delete_api_key(self, key_id: str) -> bool:
        with db.transaction(self.path) as conn:
            return conn.execute("DELETE FROM api_keys WHERE id = ?", (key_id,)).rowcount > 0

    def verify_api_key(self, token: str) -> tuple[User, ApiKey] | None:
        """The key's user and the key when `token` is a valid key; None otherwise."""
        if not token.startswith(API_KEY_PREFIX):
            return None
        key_id, sep, secret = token[len(API_KEY_PREFIX) :].partition("_")
        if not sep or not key_id or not secret:
            return None
        with db.transaction(self.path, write=False) as conn:
            row = conn.execute(
                "SELECT k.id, k.username, k.name, k.created_at, k.last_used, k.secret_hash, "
                "u.username, u.role, u.created_at, u.changed_at "
                "FROM api_keys k JOIN users u ON u.username = k.username WHERE k.id = ?",
                (key_id,),
            ).fetchone()
        if row is None or not hmac.compare_digest(row[5], _sha256(secret)):
            return None
        now = self.clock()
        if row[4] is None or now - row[4] > 60:  # record use, at most once a minute per key
            try:
                with db.transaction(self.path) as conn:
                    conn.execute("UPDATE api_keys SET last_used = ? WHERE id = ?", (now, key_id))
            except StoreError:
                pass  # a busy store is no reason to refuse a valid key
        return User(*row[6:10]), ApiKey(*row[:5])
