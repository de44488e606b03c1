"""`pacslb user add|passwd|del|list|role|apikey`: users of the management API and WebUI.

They work on the state directory's users.sqlite directly (each change is one SQLite transaction), so
they work whether the appliance runs or not; a running appliance sees a change at the next request
(a changed or deleted user's sessions end). Every change is recorded in the audit log, with the
Unix user who ran the command.
"""

from __future__ import annotations

import getpass
import os
import sys
from typing import Annotated

import typer

from . import app
from .common import StateDirOption, state_paths

user_app = typer.Typer(help="Users of the management API and WebUI (roles admin, operator, viewer) and their API keys.",
                       no_args_is_help=True)  # fmt: skip
app.add_typer(user_app, name="user")

PasswordOption = Annotated[
    str | None,
    typer.Option("--password", help="the password (else asked twice on the terminal, or read from PACSLB_PASSWORD)"),
]
RoleOption = Annotated[str, typer.Option("--role", "-r", help="admin, operator or viewer")]


def _stores(state_dir_option):
    from ..api import state
    from ..store.audit import AuditLog
    from ..store.users import UserStore

    # exit 1 when another user could have planted its users; a missing state directory is made 0750
    root = state_paths(state_dir_option, create=True).root
    try:
        return root, UserStore(state.users_db(root)), AuditLog(state.audit_db(root))
    except Exception as exc:  # noqa: BLE001 - StoreError, OSError: say which file and why
        print(f"error: cannot open the users of {root}: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None


def _who() -> str:
    from ..change.service import default_author

    return f"{default_author()} (cli)"


def _password(given: str | None) -> str:
    if given is not None:
        return given
    env = os.environ.get("PACSLB_PASSWORD")
    if env:
        return env
    if not sys.stdin.isatty():
        line = sys.stdin.readline().rstrip("\n")
        if line:
            return line
        print("error: give the password with --password, PACSLB_PASSWORD or on standard input", file=sys.stderr)
        raise typer.Exit(2)
    first = getpass.getpass("new password: ")
    if getpass.getpass("again: ") != first:
        print("error: the two passwords differ; nothing was changed", file=sys.stderr)
        raise typer.Exit(2)
    return first


def _fail(exc: Exception, audit, action: str, target: str) -> None:
    audit.record(_who(), action, target=target, outcome="refused", via="cli", detail={"message": str(exc)})
    print(f"error: {exc}", file=sys.stderr)
    raise typer.Exit(2)


@user_app.command("add")
def add(
    username: str,
    role: RoleOption = "viewer",
    password: PasswordOption = None,
    generate: Annotated[bool, typer.Option("--generate", help="make a random password and print it once")] = False,
    state_dir_option: StateDirOption = None,
) -> None:
    """Add a user with a role (default viewer)."""
    from ..store.users import UserError, new_password

    _, users, audit = _stores(state_dir_option)
    secret = new_password() if generate else _password(password)
    try:
        users.add(username, secret, role)
    except UserError as exc:
        _fail(exc, audit, "user.create", username)
    audit.record(_who(), "user.create", target=username, via="cli", detail={"role": role})
    print(f"added {username} ({role})" + (f"; password: {secret}" if generate else ""))


@user_app.command("passwd")
def passwd(
    username: str,
    password: PasswordOption = None,
    generate: Annotated[bool, typer.Option("--generate", help="make a random password and print it once")] = False,
    state_dir_option: StateDirOption = None,
) -> None:
    """Set a user's password (their WebUI sessions end)."""
    from ..api.state import forget_initial_password
    from ..store.users import UserError, new_password

    root, users, audit = _stores(state_dir_option)
    secret = new_password() if generate else _password(password)
    try:
        users.set_password(username, secret)
    except UserError as exc:
        _fail(exc, audit, "user.password", username)
    forget_initial_password(root, username)
    audit.record(_who(), "user.password", target=username, via="cli")
    print(f"changed the password of {username}" + (f": {secret}" if generate else ""))


@user_app.command("role")
def role(username: str, new_role: Annotated[str, typer.Argument(metavar="ROLE", help="admin, operator or viewer")],
         state_dir_option: StateDirOption = None) -> None:  # fmt: skip
    """Change a user's role."""
    from ..store.users import UserError

    _, users, audit = _stores(state_dir_option)
    try:
        users.set_role(username, new_role)
    except UserError as exc:
        _fail(exc, audit, "user.role", username)
    audit.record(_who(), "user.role", target=username, via="cli", detail={"role": new_role})
    print(f"{username} is {new_role} now")


@user_app.command("del")
def delete(username: str, state_dir_option: StateDirOption = None) -> None:
    """Delete a user and their API keys (the last admin cannot be deleted)."""
    from ..store.users import UserError

    _, users, audit = _stores(state_dir_option)
    try:
        users.delete(username)
    except UserError as exc:
        _fail(exc, audit, "user.delete", username)
    audit.record(_who(), "user.delete", target=username, via="cli")
    print(f"deleted {username}")


@user_app.command("list")
def list_users(state_dir_option: StateDirOption = None) -> None:
    """Every user with their role and API keys."""
    import datetime as dt

    _, users, _ = _stores(state_dir_option)
    keys = users.api_keys()
    for user in users.list():
        mine = [k for k in keys if k.username == user.username]
        changed = dt.datetime.fromtimestamp(user.changed_at).strftime("%Y-%m-%d %H:%M")
        print(f"{user.username}\t{user.role}\tchanged {changed}\t{len(mine)} API key{'s' if len(mine) != 1 else ''}"
              + "".join(f"\n  key {k.id}  {k.name or '-'}" for k in mine))  # fmt: skip


@user_app.command("apikey")
def apikey(
    username: str,
    name: Annotated[str, typer.Option("--name", help="what the key is for, e.g. 'monitoring'")] = "",
    delete_key: Annotated[str | None, typer.Option("--delete", metavar="KEY_ID", help="delete this key instead")] = None,
    state_dir_option: StateDirOption = None,
) -> None:
    """Make an API key for a user (printed once: it is stored hashed), or --delete one.

    Scripts send it as 'Authorization: Bearer KEY'; it has its user's role.
    """
    from ..store.users import UserError

    _, users, audit = _stores(state_dir_option)
    if delete_key:
        if not any(k.id == delete_key for k in users.api_keys(username)):
            print(f"error: {username} has no API key {delete_key} (see 'pacslb user list')", file=sys.stderr)
            raise typer.Exit(2)
        users.delete_api_key(delete_key)
        audit.record(_who(), "api-key.delete", target=delete_key, via="cli")
        print(f"deleted API key {delete_key}")
        return
    try:
        key, token = users.add_api_key(username, name)
    except UserError as exc:
        _fail(exc, audit, "api-key.create", username)
    audit.record(_who(), "api-key.create", target=username, via="cli", detail={"id": key.id, "name": key.name})
    print(token)
    print(f"API key {key.id} for {username}: keep it now, it cannot be shown again", file=sys.stderr)
