"""store/password_hashing.py: argon2id in a child process, and its 19 MiB kept out of the caller's memory."""

from __future__ import annotations

import subprocess
import sys

import pytest
from argon2 import PasswordHasher

from pacslb.store import password_hashing as ph


def test_a_hash_verifies_its_password_only() -> None:
    stored = ph.hash_password("correct horse battery")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert ph.verify_password(stored, "correct horse battery") is True
    assert ph.verify_password(stored, "correct horse batterY") is False
    assert not ph.needs_rehash(stored)


def test_a_malformed_hash_is_a_wrong_password_not_an_error() -> None:
    assert ph.verify_password("not a hash", "whatever") is False


def test_the_dummy_hash_has_todays_parameters() -> None:
    """Unknown users are verified against it: with other parameters their logins would cost less (and tell)."""
    assert not ph.needs_rehash(ph.DUMMY_HASH)
    assert ph.verify_password(ph.DUMMY_HASH, "a guess") is False
    assert not PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1).check_needs_rehash(ph.DUMMY_HASH)


def test_an_overlong_password_starts_no_child() -> None:
    with pytest.raises(ph.PasswordHashError, match="more than 4096 bytes"):
        ph.hash_password("x" * (ph.MAX_PASSWORD_BYTES + 1))


def test_a_failing_child_is_an_error_that_decides_nothing(monkeypatch) -> None:
    monkeypatch.setattr(ph, "_CHILD", "raise SystemExit('argon2 is broken here')")
    with pytest.raises(ph.PasswordHashError, match="argon2 is broken here"):
        ph.verify_password(ph.DUMMY_HASH, "a guess")


def test_the_callers_peak_memory_stays_put() -> None:
    """A fresh process (its peak is not already above): a hash and a verification grow its VmHWM by far less than the
    19 MiB argon2id touches; hashing in the process itself grows it by them (the control)."""
    script = """
import re, sys
def hwm():
    return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
from argon2 import PasswordHasher
from pacslb.store import password_hashing as ph
before = hwm()
if sys.argv[1] == "child":
    ph.verify_password(ph.hash_password("correct horse battery"), "correct horse battery")
else:
    PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1).hash("correct horse battery")
print(hwm() - before)
"""
    grown = {how: int(subprocess.run([sys.executable, "-c", script, how], capture_output=True, text=True, check=True,
                                     timeout=120).stdout) for how in ("child", "here")}  # fmt: skip
    assert grown["here"] >= 18 * 1024, grown  # KiB: the control, so that the test can fail
    assert grown["child"] < 4 * 1024, grown
