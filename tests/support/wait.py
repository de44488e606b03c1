"""The one polling helper of the test suite (and of bench/, which may import it stand-alone).

    value = wait_until(predicate, timeout=30, interval=0.05, what="rs1 to be UP")

Calls `predicate()` until it returns something truthy and returns that value. After `timeout` seconds
it raises WaitTimeout (an AssertionError, so pytest reports a plain test failure) naming `what`.
An exception raised by the predicate propagates at once (a predicate can fail fast that way).
"""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """wait_until ran out of time."""


def wait_until(predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.05, what: str = "condition") -> T:
    """Poll `predicate` every `interval` seconds until truthy; its value, or WaitTimeout after `timeout` seconds."""
    if not isinstance(interval, (int, float)) or isinstance(interval, bool):
        raise TypeError(f"wait_until(predicate, timeout, interval, what): interval must be a number, not {interval!r}")
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)
