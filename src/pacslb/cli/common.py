"""What the command modules share: option types, the state directory, printing problems, asking the controller."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Iterable

import typer

from ..model import DEFAULT_CONFIG_FILE, Loaded, Problem, load_file
from ..model.files import Reserved
from ..paths import StatePaths

if TYPE_CHECKING:
    from ..controller.lock import ControllerLock

EXIT_INVALID = 2  # the command-line contract: invalid input exits 2

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="configuration file", show_default=True)]
DEFAULT_CONFIG = Path(DEFAULT_CONFIG_FILE)
DEFAULT_STATE_DIR = Path("/var/lib/pacslb")

StateDirOption = Annotated[
    Path | None,
    typer.Option("--state-dir", help=f"state directory (or PACSLB_STATE_DIR; default {DEFAULT_STATE_DIR})"),
]


def state_dir(option: Path | None) -> Path:
    """The state directory: the option, else PACSLB_STATE_DIR, else the default."""
    if option is not None:
        return option
    env = os.environ.get("PACSLB_STATE_DIR")
    return Path(env) if env else DEFAULT_STATE_DIR


def trusted_paths_or_exit(root: Path, create: bool = False) -> StatePaths:
    """The files of the state directory `root` (resolved), or exit 1 when another user could change it (statedir.py);
    with `create`, a missing one is made, mode 0750. Every command that opens a state directory comes through here
    or through `lock_state_dir_or_exit`."""
    from ..statedir import UntrustedStateDir, trusted

    try:
        return StatePaths(trusted(root.absolute(), create=create))
    except UntrustedStateDir as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    except OSError as exc:
        print(f"error: cannot make the state directory {root}: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None


def state_paths(option: Path | None, create: bool = False) -> StatePaths:
    """The state directory of a command (`state_dir`), checked: exit 1 when another user could change it."""
    return trusted_paths_or_exit(state_dir(option), create)


def print_problems(problems: Iterable[Problem]) -> None:
    for problem in problems:
        print(problem, file=sys.stderr)


def load_or_exit(path: Path, paths: StatePaths | None = None) -> Loaded:
    """Load and validate a configuration; on errors print each one and exit 2. With the state directory's
    `paths` (an appliance about to run it), a file the configuration names there is refused too."""
    reserved = Reserved(paths.root, paths.certs_dir) if paths is not None else None
    loaded = load_file(path, reserved)
    print_problems(loaded.problems)
    if not loaded.ok:
        count = len([p for p in loaded.problems if p.severity == "error"])
        print(f"{path}: {count} problem{'s' if count != 1 else ''}; nothing was changed", file=sys.stderr)
        raise typer.Exit(EXIT_INVALID)
    return loaded


def lock_state_dir_or_exit(paths: StatePaths) -> ControllerLock:
    """Take the state directory's controller lock, or exit 1 naming who holds it (or what is wrong: a state
    directory another user could change is refused, statedir.py)."""
    from ..controller.lock import ControllerLock, LockHeld
    from ..statedir import UntrustedStateDir

    lock = ControllerLock(paths)
    try:
        lock.acquire()
    except (LockHeld, UntrustedStateDir) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    except OSError as exc:
        print(f"error: cannot use the state directory {paths.root}: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    return lock


def request_controller(paths: StatePaths, method: str, path: str, timeout: float = 10) -> Any:
    """The running controller's answer (an httpx.Response) to `method` API_PREFIX + `path` on its Unix socket. Exits
    1 saying why when no controller runs on the state directory or it does not answer."""
    import httpx

    from ..controller import API_PREFIX

    socket_path = paths.controller_socket
    if not socket_path.exists():
        print(f"error: no controller runs on {paths.root}; start the appliance with 'pacslb up --state-dir {paths.root}'",
              file=sys.stderr)  # fmt: skip
        raise typer.Exit(1)
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(socket_path)), base_url="http://pacslb", timeout=timeout) as c:
            return c.request(method, f"{API_PREFIX}{path}")
    except httpx.HTTPError as exc:
        print(f"error: the controller does not answer on {socket_path}: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None


def ask_controller(paths: StatePaths, method: str, path: str, not_found: str | None = None) -> dict[str, Any]:
    """The JSON answer of the running controller (its Unix-socket API, API_PREFIX + `path`). Exits 1 saying why
    when no controller runs on the state directory, it does not answer, or it answers an error (`not_found`: what
    a 404 means to this command)."""
    response = request_controller(paths, method, path)
    if response.status_code == 404 and not_found is not None:
        print(f"error: {not_found}", file=sys.stderr)
        raise typer.Exit(1)
    if response.status_code >= 400:
        print(f"error: the controller answered {response.status_code}: {response.text[:500]}", file=sys.stderr)
        raise typer.Exit(1)
    return response.json()
