"""Login throttling: who may try a password now, decided and counted atomically, and the audit of refusals.

Every attempt is counted under one lock *before* its password is checked (as a failure, taken back if
the password is right), so that a burst of concurrent attempts cannot all slip through before the first
failure is recorded. Three counts, each forgotten after FORGET_AFTER quiet seconds:

  - per (user name, client address): FREE_FAILURES free, then each further attempt from there waits
    BACKOFF_BASE * 2**(n - FREE_FAILURES) s, up to BACKOFF_MAX (429 with Retry-After meanwhile);
  - per client address, whatever the user name (password spraying): ADDRESS_FREE_FAILURES free, then the
    same back-off;
  - per user name, from every address: never refused (a guesser elsewhere must not lock the real user
    out), only slowed down: after USER_SLOW_AFTER failures each attempt for that name waits
    USER_DELAY_BASE * 2**(n - USER_SLOW_AFTER) s, up to USER_DELAY_MAX, before its password is checked.

A right password clears its (user, address) count. An admin lifts a user's back-off with
`POST /api/v1/users/{name}/unblock` or `pacslb user unblock NAME` (`unblock`, `unblock_before`).

ThrottledAudit turns the refusals into one audit row per (user name, address) per window, with a count.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

FREE_FAILURES = 5
ADDRESS_FREE_FAILURES = 20
BACKOFF_BASE = 5.0
BACKOFF_MAX = 15 * 60.0
USER_SLOW_AFTER = 10
USER_DELAY_BASE = 0.25
USER_DELAY_MAX = 2.0
FORGET_AFTER = 60 * 60.0
MAX_ENTRIES = 100_000  # bound the memory a flood of made-up names and addresses can take
ANY_USER = "*"  # the audit's user name for attempts refused because of their address


class LoginThrottled(Exception):
    """Too many failed logins from this address (for this user name, or any): try again after `retry_after` seconds."""

    def __init__(self, retry_after: float, who: str, by_address: bool = False) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        self.who = who
        self.by_address = by_address  # refused for the address's count (any user name), not the (user, address) one
        super().__init__(f"too many failed logins for {who}: try again in {self.retry_after} s")


@dataclass
class _Count:
    count: int = 0
    last: float = 0.0  # the last failure (or attempt in flight): FORGET_AFTER counts from it
    blocked_until: float = 0.0


@dataclass(frozen=True)
class Admission:
    """One attempt let through: counted already; `delay` seconds to wait before checking its password."""

    username: str
    address: str
    delay: float
    at: float = 0.0
    previous: tuple[float, float] = (0.0, 0.0)  # the address's and the user name's `last` before this attempt


def backoff(over: int, base: float, maximum: float) -> float:
    """Seconds blocked after the `over`-th failure beyond the free ones (0, 1, 2...): base, 2 base, 4 base... up to maximum."""
    return min(base * 2 ** min(over, 60), maximum)


@dataclass
class LoginThrottle:
    """The three counts of failed logins (module docstring); thread-safe, every decision under one lock."""

    clock: Callable[[], float] = time.time
    free: int = FREE_FAILURES
    address_free: int = ADDRESS_FREE_FAILURES
    base: float = BACKOFF_BASE
    maximum: float = BACKOFF_MAX
    user_slow_after: int = USER_SLOW_AFTER
    user_delay_base: float = USER_DELAY_BASE
    user_delay_max: float = USER_DELAY_MAX
    _pairs: dict[str, dict[str, _Count]] = field(default_factory=dict)  # user name -> address -> count
    _addresses: dict[str, _Count] = field(default_factory=dict)
    _users: dict[str, _Count] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self, username: str, address: str | None) -> Admission:
        """Let this attempt through and count it as a failure, or raise LoginThrottled: one atomic decision."""
        address = address or "-"
        with self._lock:
            now = self.clock()
            self._bound(now)
            pair = self._live(self._pairs.get(username, {}), address, now)
            if pair is not None and pair.blocked_until > now:
                raise LoginThrottled(pair.blocked_until - now, f"user {username} from {address}")
            by_address = self._live(self._addresses, address, now)
            if by_address is not None and by_address.blocked_until > now:
                raise LoginThrottled(by_address.blocked_until - now, f"address {address}", by_address=True)
            user = self._live(self._users, username, now)
            delay = 0.0
            if user is not None and user.count >= self.user_slow_after:
                delay = min(self.user_delay_base * 2 ** min(user.count - self.user_slow_after, 60), self.user_delay_max)
            self._count(self._pairs.setdefault(username, {}), address, now, self.free)
            previous = (
                self._count(self._addresses, address, now, self.address_free),
                self._count(self._users, username, now, None),
            )
        return Admission(username, address, delay, now, previous)

    def succeeded(self, admission: Admission) -> None:
        """The password was right: clear its (user, address) count and take back its own failure on the others."""
        with self._lock:
            pairs = self._pairs.get(admission.username, {})
            pairs.pop(admission.address, None)
            if not pairs:
                self._pairs.pop(admission.username, None)
            for table, key, free, previous in ((self._addresses, admission.address, self.address_free, admission.previous[0]),
                                               (self._users, admission.username, None, admission.previous[1])):  # fmt: skip
                found = table.get(key)
                if found is None:
                    continue
                found.count -= 1
                if found.count <= 0:
                    del table[key]
                    continue
                if found.last == admission.at:  # no failure since: the count is forgotten an hour after the last failure
                    found.last = previous
                if free is not None and found.count < free:
                    found.blocked_until = 0.0  # only this success's own count had blocked it

    def unblock(self, username: str) -> int:
        """Lift every back-off and slow-down of `username`; returns how many addresses it was blocked from."""
        return self.unblock_before(username, math.inf)

    def unblock_before(self, username: str, at: float) -> int:
        """`unblock` for the counts last touched at or before `at` (failures after an unblock stay counted)."""
        with self._lock:
            now = self.clock()
            pairs = self._pairs.get(username, {})
            lifted = [a for a, c in pairs.items() if c.last <= at]
            blocked = sum(1 for a in lifted if pairs[a].blocked_until > now)
            for address in lifted:
                del pairs[address]
            if not pairs:
                self._pairs.pop(username, None)
            user = self._users.get(username)
            if user is not None and user.last <= at:
                del self._users[username]
            return blocked

    def held_back(self, username: str) -> bool:
        """True when some count of `username` refuses or slows its logins now (a cheap hint, for reading unblocks)."""
        with self._lock:
            now = self.clock()
            user = self._users.get(username)
            if user is not None and user.count >= self.user_slow_after and now - user.last <= FORGET_AFTER:
                return True
            return any(c.blocked_until > now for c in self._pairs.get(username, {}).values())

    def blocked(self) -> list[dict]:
        """The (user, address) pairs and addresses refused now, with the seconds left."""
        with self._lock:
            now = self.clock()
            found = [{"username": u, "address": a, "failures": c.count, "retry_after": math.ceil(c.blocked_until - now)}
                     for u, pairs in self._pairs.items() for a, c in pairs.items() if c.blocked_until > now]  # fmt: skip
            found += [{"username": ANY_USER, "address": a, "failures": c.count, "retry_after": math.ceil(c.blocked_until - now)}
                      for a, c in self._addresses.items() if c.blocked_until > now]  # fmt: skip
            return found

    # --- under the lock ---------------------------------------------------------------------------------

    def _live(self, table: dict[str, _Count], key: str, now: float) -> _Count | None:
        found = table.get(key)
        if found is not None and now - found.last > FORGET_AFTER and found.blocked_until <= now:
            del table[key]
            return None
        return found

    def _count(self, table: dict[str, _Count], key: str, now: float, free: int | None) -> float:
        """Count one attempt on `key`; returns its `last` before."""
        found = self._live(table, key, now)
        if found is None:
            found = table[key] = _Count()
        previous, found.last = found.last, now
        found.count += 1
        if free is not None and found.count >= free:
            found.blocked_until = now + backoff(found.count - free, self.base, self.maximum)
        return previous

    def _bound(self, now: float) -> None:
        size = len(self._addresses) + len(self._users) + sum(len(p) for p in self._pairs.values())
        if size <= MAX_ENTRIES:
            return

        def keep(c: _Count) -> bool:
            return now - c.last < FORGET_AFTER or c.blocked_until > now

        self._addresses = {k: c for k, c in self._addresses.items() if keep(c)}
        self._users = {k: c for k, c in self._users.items() if keep(c)}
        pairs = {u: {a: c for a, c in p.items() if keep(c)} for u, p in self._pairs.items()}
        self._pairs = {u: p for u, p in pairs.items() if p}


# --- the audit of refused attempts -------------------------------------------------------------------------

AUDIT_FLUSH = 10.0  # at most one write per (user, address) in this many seconds, however fast the refusals come
MAX_NAMES = 20  # user names kept per address-wide row


@dataclass
class _Pending:
    count: int = 0
    flushed: float = -math.inf
    names: set[str] = field(default_factory=set)


@dataclass
class ThrottledAudit:
    """Refused logins counted in memory, written as AuditLog.record_throttled rows (one per (user, address) per
    window; address-wide refusals under the user name ANY_USER, with the names tried). `take` says what to
    write now: the first refusal of a pair at once, then the count at most every AUDIT_FLUSH seconds."""

    clock: Callable[[], float] = time.time
    _pending: dict[tuple[str, str], _Pending] = field(default_factory=dict)
    _swept: float = -math.inf
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def refused(self, username: str, address: str | None, by_address: bool) -> list[tuple[str, str, int, list[str]]]:
        """Count one refusal; returns the rows to write now: (user name, address, count, names tried)."""
        key = (ANY_USER if by_address else username, address or "-")
        with self._lock:
            now = self.clock()
            entry = self._pending.setdefault(key, _Pending())
            entry.count += 1
            if by_address and len(entry.names) < MAX_NAMES:
                entry.names.add(username)
            due = [key] if now - entry.flushed >= AUDIT_FLUSH else []
            if now - self._swept >= AUDIT_FLUSH:  # the pairs that went quiet keep no count unwritten for long
                self._swept = now
                due += [k for k, e in self._pending.items() if e.count and k != key and now - e.flushed >= AUDIT_FLUSH]
                for k in [k for k, e in self._pending.items() if not e.count and now - e.flushed > FORGET_AFTER]:
                    del self._pending[k]
            return [self._take(k, now) for k in due]

    def flush(self) -> list[tuple[str, str, int, list[str]]]:
        """Every count not written yet (before the audit log is read)."""
        with self._lock:
            now = self.clock()
            return [self._take(k, now) for k, e in list(self._pending.items()) if e.count]

    def _take(self, key: tuple[str, str], now: float) -> tuple[str, str, int, list[str]]:
        entry = self._pending[key]
        row = (key[0], key[1], entry.count, sorted(entry.names))
        entry.count, entry.flushed = 0, now
        return row


__all__ = ["Admission", "LoginThrottle", "LoginThrottled", "ThrottledAudit", "backoff"]
