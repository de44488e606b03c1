"""Whether a state directory can be trusted, and making a missing one safely.

Whoever can write the state directory controls the appliance: users.sqlite gives the WebUI's accounts,
revisions.sqlite the configuration that runs at the next start, the Unix sockets and PID files what the
CLI talks to and signals. So a state directory is used only when nobody but root (or the user running
pacslb) can change it or swap it for another:

  - the state directory itself: a directory owned by root (or by the user running pacslb), not writable
    by its group or by others (a sticky bit does not help here: others could still create files in it);
  - every parent up to /: owned by root (or that user), and not writable by group or others, unless it
    has the sticky bit (like /tmp): then others cannot rename or remove the entry of the state directory.

The path is resolved first (symbolic links followed), and the resolved path is the one used: a link
that another user could repoint later cannot lead the appliance elsewhere after the check.
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

STATE_DIR_MODE = 0o750  # a new state directory: root reads and writes, its group reads, others nothing
PARENT_MODE = 0o755  # a missing parent made on the way (as /var/lib is)


class UntrustedStateDir(Exception):
    """The state directory (or a parent) could be changed by another user: the message names it, the owner and the fix."""


def _owner(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _trusted_owners() -> set[int]:
    return {0, os.geteuid()}


def problem(root: Path) -> str | None:
    """Why the state directory `root` (resolved, may be missing) cannot be trusted, or None. A missing state
    directory is judged by its parents. Pure but for lstat."""
    root = Path(os.path.realpath(root))
    owners = _trusted_owners()
    elsewhere = "or choose a state directory only root can change, e.g. /var/lib/pacslb"
    try:
        st = os.lstat(root)
    except FileNotFoundError:
        st = None
    if st is not None:
        if not stat.S_ISDIR(st.st_mode):
            return f"the state directory {root} is not a directory; choose one only root can change, e.g. /var/lib/pacslb"
        if st.st_uid not in owners:
            return (
                f"the state directory {root} is owned by {_owner(st.st_uid)}, not root: that user could plant its "
                f"users and configuration; fix: chown root:root {root} && chmod 0750 {root}, {elsewhere}"
            )
        if st.st_mode & 0o022:
            return (
                f"the state directory {root} is writable by its group or others (mode {stat.S_IMODE(st.st_mode):04o}, "
                f"owner {_owner(st.st_uid)}): they could plant its users and configuration; fix: chmod go-w {root}, "
                f"{elsewhere}"
            )
    for parent in root.parents:
        try:
            pst = os.lstat(parent)
        except FileNotFoundError:
            continue  # made by us (root) when the state directory is created
        if pst.st_uid not in owners:
            return (
                f"{parent}, a parent of the state directory {root}, is owned by {_owner(pst.st_uid)}, not root: "
                f"that user could replace the state directory; fix: chown root:root {parent}, {elsewhere}"
            )
        if pst.st_mode & 0o022 and not pst.st_mode & stat.S_ISVTX:
            return (
                f"{parent}, a parent of the state directory {root}, is writable by its group or others "
                f"(mode {stat.S_IMODE(pst.st_mode):04o}) without the sticky bit: they could replace the state "
                f"directory; fix: chmod go-w {parent}, {elsewhere}"
            )
    return None


def trusted(root: Path, create: bool = False) -> Path:
    """The resolved state directory, after checking it (and, with `create`, making it mode 0750 when missing).
    Raises UntrustedStateDir naming the directory, its owner and the fix."""
    resolved = Path(os.path.realpath(root))
    if why := problem(resolved):
        raise UntrustedStateDir(why)
    if create and not resolved.exists():
        for missing in [*reversed([p for p in resolved.parents if not p.exists()]), resolved]:
            try:
                missing.mkdir()
            except FileExistsError:
                continue  # made by someone else meanwhile: judged below, and not touched
            # mkdir's mode is cut by the umask (and a umask of 0 would leave it writable by all): say it exactly
            os.chmod(missing, STATE_DIR_MODE if missing == resolved else PARENT_MODE)
    if create and (why := problem(resolved)):  # made by someone else in between
        raise UntrustedStateDir(why)
    return resolved
