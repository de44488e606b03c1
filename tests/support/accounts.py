"""Local accounts made by a test: a system user that exists only while the test runs.

    with system_user("ext") as (name, uid): ...      useradd --system --no-create-home, then userdel

Names are unique per process and call, so tests running at the same time never share one.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import subprocess
from typing import Iterator

_serial = itertools.count()


@contextlib.contextmanager
def system_user(purpose: str) -> Iterator[tuple[str, int]]:
    """A new system user without home or login shell, removed afterwards (needs root)."""
    name = f"pt{purpose[:8]}{os.getpid() % 100_000}x{next(_serial)}"
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True, capture_output=True
    )
    try:
        yield name, pwd.getpwnam(name).pw_uid
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)
