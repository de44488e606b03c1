"""A throw-away unprivileged Unix user, for tests of what a local non-root user can and cannot do.

local_user(prefix) -> pwd.struct_passwd     context manager: `useradd --system --no-create-home` of a unique
                                            name, `userdel` at the end (also after a failure); needs root
as_user(user) -> dict                       subprocess keyword arguments that run a child as that user
                                            (its uid, its group only, cwd /)
PYTHON                                      the system's Python, which any user may run (a venv under a
                                            private directory may not be readable by that user)
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import subprocess
from typing import Any, Iterator

import pytest

PYTHON = "/usr/bin/python3"


@contextlib.contextmanager
def local_user(prefix: str = "pacslbt") -> Iterator[pwd.struct_passwd]:
    """A new system user without a home directory (a unique name: other test runs may make theirs at once)."""
    if os.geteuid() != 0:
        pytest.skip("making a local user needs root")
    name = f"{prefix}-{secrets.token_hex(4)}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True, text=True)  # fmt: skip
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], capture_output=True, text=True)


def as_user(user: pwd.struct_passwd) -> dict[str, Any]:
    """Keyword arguments of subprocess.run / Popen that run the child as `user`, with no other group."""
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": [], "cwd": "/",
            "env": {"PATH": "/usr/bin:/bin", "HOME": "/"}}  # fmt: skip
