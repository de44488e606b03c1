"""Users of the management API and WebUI, and their API keys, in SQLite (<state>/users.sqlite, mode 0600).

Passwords are hashed with argon2id (argon2-cffi) and must pass `check_password` (length, not the user
name, not in the bundled list of common passwords, common_passwords.txt). API keys are long random
secrets shown once and kept as their SHA-256 (a key has 256 bits of entropy, so a fast hash is enough
and checking a key on every request stays cheap); each expires (DEFAULT_API_KEY_DAYS unless asked
otherwise) and dies with its user's password (set_password deletes the user's keys). The CLI (`pacslb user ...`) and the running controller use the same file;
each call is one SQLite transaction, so they never step on each other.

Roles: admin (everything), operator (drain / halt / online and weights, and reads), viewer (reads).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from . import db
from .password_hashing import DUMMY_HASH, hash_password, needs_rehash, verify_password
from .revisions import StoreError

ROLES = ("admin", "operator", "viewer")
SCHEMA_VERSION = 3  # 2: api_keys.expires_at, unblocks; 3: users.must_change_password
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
COMMON_PASSWORDS = Path(__file__).with_name("common_passwords.txt")
API_KEY_PREFIX = "pacslb_"
DEFAULT_API_KEY_DAYS = 90  # a forgotten key stops working on its own; ask for longer (up to MAX_API_KEY_DAYS) when needed
MAX_API_KEY_DAYS = 3650
DAY = 86400.0
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    username      TEXT PRIMARY KEY,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    password_hash TEXT NOT NULL,
    created_at    REAL NOT NULL,
    changed_at    REAL NOT NULL,
    must_change_password INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS api_keys (
    id          TEXT PRIMARY KEY,
    username    TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at  REAL NOT NULL,
    last_used   REAL,
    expires_at  REAL
);
CREATE TABLE IF NOT EXISTS unblocks (
    username TEXT PRIMARY KEY,
    at       REAL NOT NULL
)
"""

# argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane) rather than the library's 64 MiB, each hash and
# each verification in a child process (password_hashing.py): the 19 MiB never land in the controller.
# Login throttling bounds guessing.


class UserError(ValueError):
    """A user cannot be added or changed as asked; the message says why and what to do."""


USER_COLUMNS = "username, role, created_at, changed_at, must_change_password"


@dataclass(frozen=True)
class User:
    username: str
    role: str
    created_at: float
    changed_at: float
    must_change_password: bool = False  # a one-time password (made for the user by someone else): changed before anything else

    def as_dict(self) -> dict:
        return {"username": self.username, "role": self.role, "created_at": self.created_at, "changed_at": self.changed_at,
                "must_change_password": bool(self.must_change_password)}  # fmt: skip


def _user(row) -> User:
    return User(row[0], row[1], row[2], row[3], bool(row[4]))


@dataclass(frozen=True)
class ApiKey:
    id: str
    username: str
    name: str
    created_at: float
    last_used: float | None
    expires_at: float | None

    def as_dict(self) -> dict:
        return {"id": self.id, "username": self.username, "name": self.name, "created_at": self.created_at,
                "last_used": self.last_used, "expires_at": self.expires_at}  # fmt: skip


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


@functools.cache
def common_passwords() -> frozenset[str]:
    """The bundled list of common passwords and the words under them (lower case)."""
    lines = COMMON_PASSWORDS.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


def _core(text: str) -> str:
    """`text` in lower case without the digits, punctuation and blanks around it ("Welcome2024!" -> "welcome")."""
    return re.sub(r"^[\W\d_]+|[\W\d_]+$", "", text.lower())


def check_password(password: str, username: str | None = None) -> str:
    """The password when it may be used (by `username`); UserError naming the rule and the fix otherwise.

    Rules: MIN_PASSWORD_LENGTH to MAX_PASSWORD_LENGTH characters; not the user name (give or take digits
    and punctuation around it); not a common password (common_passwords.txt, give or take the same); not one
    or two characters repeated; some letters."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"the password is too short: use at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UserError(f"the password is too long: use at most {MAX_PASSWORD_LENGTH} characters")
    lowered, core = password.lower(), _core(password)
    if username and username.lower() in (lowered, core):
        raise UserError("the password is the user name: choose one that others cannot guess (e.g. four random words)")
    if not core:
        raise UserError("the password has no letters: digits and punctuation alone are guessed quickly; add words")
    listed = common_passwords()
    if lowered in listed or core in listed:
        raise UserError("the password is too common (it is in the list that guessing tools try first): "
                        "choose another (e.g. four random words)")  # fmt: skip
    if len(set(lowered)) < 3:
        raise UserError("the password repeats one or two characters: choose one that others cannot guess")
    return password


def check_key_days(days: int) -> int:
    """An API key's lifetime in days, 1 to MAX_API_KEY_DAYS."""
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_API_KEY_DAYS:
        raise UserError(f"expires_in_days must be a whole number of days from 1 to {MAX_API_KEY_DAYS} (it is {days!r})")
    return days


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
        self._migrate()
        # a dummy hash to verify against for unknown users: a login for a missing user costs as much as a wrong password
        self._dummy = DUMMY_HASH

    def _migrate(self) -> None:
        """A store made before API keys expired gets the column; its keys expire DEFAULT_API_KEY_DAYS from now
        (not at once: the scripts using them get time to get new ones). A store made before forced password
        changes gets `must_change_password`, 0 for its users: their passwords were in use already."""
        with db.transaction(self.path) as conn:
            if "must_change_password" not in {row[1] for row in conn.execute("PRAGMA table_info(users)")}:
                try:
                    conn.execute("ALTER TABLE users ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0")
                except sqlite3.OperationalError:  # another process added it meanwhile
                    pass
            columns = {row[1] for row in conn.execute("PRAGMA table_info(api_keys)")}
            if "expires_at" not in columns:
                try:
                    conn.execute("ALTER TABLE api_keys ADD COLUMN expires_at REAL")
                except sqlite3.OperationalError:  # another process added it meanwhile
                    pass
            conn.execute("UPDATE api_keys SET expires_at = ? WHERE expires_at IS NULL",
                         (self.clock() + DEFAULT_API_KEY_DAYS * DAY,))  # fmt: skip

    # --- users -----------------------------------------------------------------------------------

    def add(self, username: str, password: str, role: str, must_change_password: bool = False) -> User:
        """A new user; `must_change_password` when someone else chose the password (a one-time password): the user
        must change it before doing anything else."""
        check_username(username), check_role(role), check_password(password, username)
        digest = hash_password(password)
        now = self.clock()
        with db.transaction(self.path) as conn:
            if conn.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone():
                raise UserError(f"user {username} exists already: change it with 'pacslb user passwd {username}'")
            conn.execute(
                "INSERT INTO users (username, role, password_hash, created_at, changed_at, must_change_password) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (username, role, digest, now, now, int(must_change_password)),
            )
        return User(username, role, now, now, must_change_password)

    def get(self, username: str) -> User | None:
        with db.transaction(self.path, write=False) as conn:
            row = conn.execute(f"SELECT {USER_COLUMNS} FROM users WHERE username = ?", (username,)).fetchone()
        return _user(row) if row else None

    def list(self) -> list[User]:
        with db.transaction(self.path, write=False) as conn:
            rows = conn.execute(f"SELECT {USER_COLUMNS} FROM users ORDER BY username").fetchall()
        return [_user(row) for row in rows]

    def count(self) -> int:
        with db.transaction(self.path, write=False) as conn:
            return conn.execute("SELECT COUNT(*) FROM users").fetchone()[0]

    def set_password(self, username: str, password: str, must_change_password: bool = False) -> int:
        """A new password for `username`; the user's API keys die with the old one. Returns how many keys were deleted.

        `must_change_password`: someone else set it (a reset): the user must change it at the next login. A user's own
        change clears it."""
        check_password(password, username)
        digest = hash_password(password)
        with db.transaction(self.path) as conn:
            done = conn.execute(
                "UPDATE users SET password_hash = ?, changed_at = ?, must_change_password = ? WHERE username = ?",
                (digest, self.clock(), int(must_change_password), username),
            ).rowcount
            if not done:
                raise UserError(f"there is no user {username}: see 'pacslb user list'")
            # a leaked password may have minted keys: they go with it (the owner makes new ones after logging in)
            return conn.execute("DELETE FROM api_keys WHERE username = ?", (username,)).rowcount

    def _rehash(self, username: str, password: str) -> None:
        """The same password under the current argon2 parameters (no policy check, keys kept: nothing changed for the user)."""
        digest = hash_password(password)
        with db.transaction(self.path) as conn:
            conn.execute("UPDATE users SET password_hash = ? WHERE username = ?", (digest, username))

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
            row = conn.execute(f"SELECT {USER_COLUMNS}, password_hash FROM users WHERE username = ?", (username,)).fetchone()
        stored = row[5] if row else self._dummy
        if not verify_password(stored, password) or row is None:
            return None
        if needs_rehash(stored):
            self._rehash(username, password)
        return _user(row)

    # --- API keys --------------------------------------------------------------------------------

    def add_api_key(self, username: str, name: str = "", days: int = DEFAULT_API_KEY_DAYS) -> tuple[ApiKey, str]:
        """A new key for `username`, valid for `days`: (its record, the secret token to show once). The token is never stored."""
        check_key_days(days)
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        token = f"{API_KEY_PREFIX}{key_id}_{secret}"
        now = self.clock()
        expires = now + days * DAY
        with db.transaction(self.path) as conn:
            if not conn.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone():
                raise UserError(f"there is no user {username}: see 'pacslb user list'")
            conn.execute(
                "INSERT INTO api_keys (id, username, name, secret_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                (key_id, username, name[:200], _sha256(secret), now, expires),
            )
        return ApiKey(key_id, username, name[:200], now, None, expires), token

    def api_keys(self, username: str | None = None) -> list[ApiKey]:
        """API keys (of `username`, or all), expired ones included (their `expires_at` says so)."""
        query = "SELECT id, username, name, created_at, last_used, expires_at FROM api_keys"
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
                "SELECT k.id, k.username, k.name, k.created_at, k.last_used, k.expires_at, k.secret_hash, "
                "u.username, u.role, u.created_at, u.changed_at, u.must_change_password "
                "FROM api_keys k JOIN users u ON u.username = k.username WHERE k.id = ?",
                (key_id,),
            ).fetchone()
        if row is None or not hmac.compare_digest(row[6], _sha256(secret)):
            return None
        now = self.clock()
        if row[5] is None or now >= row[5]:
            return None  # expired (kept in the list, so that its owner sees which one to replace)
        if row[4] is None or now - row[4] > 60:  # record use, at most once a minute per key
            try:
                with db.transaction(self.path) as conn:
                    conn.execute("UPDATE api_keys SET last_used = ? WHERE id = ?", (now, key_id))
            except StoreError:
                pass  # a busy store is no reason to refuse a valid key
        return _user(row[7:12]), ApiKey(*row[:6])

    # --- login throttle: unblocks -----------------------------------------------------------------

    def unblock(self, username: str) -> float:
        """Record that an admin lifted the login back-off of `username` (the running controller reads it at the
        user's next login: the CLI needs no connection to it). Returns the time recorded."""
        now = self.clock()
        with db.transaction(self.path) as conn:
            conn.execute("INSERT INTO unblocks (username, at) VALUES (?, ?) ON CONFLICT(username) DO UPDATE SET at = ?",
                         (username, now, now))  # fmt: skip
        return now

    def unblocked_at(self, username: str) -> float | None:
        """When the login back-off of `username` was last lifted (None: never)."""
        with db.transaction(self.path, write=False) as conn:
            row = conn.execute("SELECT at FROM unblocks WHERE username = ?", (username,)).fetchone()
        return row[0] if row else None
