"""`pacslb user add|passwd|del|list|role|apikey|unblock`: users of the management API and WebUI.

They work on the state directory's users.sqlite directly (each change is one SQLite transaction), so
they work whether the appliance runs or not; a running appliance sees a change at the next request
(a changed or deleted user's sessions end; an unblock lifts the login back-off at the user's next
login). Every change is recorded in the audit log, with the Unix user who ran the command.

A password never goes on the command line (every local user can read it there, in `ps`): it is asked
twice on a terminal, or read from --password-file FILE ('-' for standard input), PACSLB_PASSWORD, or
the first line of standard input when that is not a terminal.
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from . import app
from .common import StateDirOption, state_paths

user_app = typer.Typer(help="Users of the management API and WebUI (roles admin, operator, viewer) and their API keys.",
                       no_args_is_help=True)  # fmt: skip
app.add_typer(user_app, name="user")

UsernameArgument = Annotated[str, typer.Argument(help="the user's name, as they log in with it")]
PasswordFileOption = Annotated[
    Path | None,
    typer.Option("--password-file", metavar="FILE", help="read the password from the first line of FILE ('-': standard "
                 "input); else it is asked twice on a terminal, or read from PACSLB_PASSWORD or standard input"),
]  # fmt: skip
# gone: kept hidden only to say what to use instead (a password in argv is readable by every local user)
RemovedPasswordOption = Annotated[str | None, typer.Option("--password", hidden=True)]
RoleOption = Annotated[str, typer.Option("--role", "-r", help="admin, operator or viewer")]
GenerateOption = Annotated[
    bool,
    typer.Option(
        "--generate", help="make a random one-time password and print it once (the user must change it at the first login)"
    ),
]


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


def _password(password_file: Path | None, removed: str | None = None) -> str:
    """The new password: from --password-file, PACSLB_PASSWORD, standard input, or asked twice on the terminal."""
    if removed is not None:
        print("error: --password is no longer accepted (every local user can read a command line): use "
              "--password-file FILE, --password-file - (standard input), PACSLB_PASSWORD, or answer the prompt; "
              "nothing was changed", file=sys.stderr)  # fmt: skip
        raise typer.Exit(2)
    if password_file is not None:
        try:
            text = sys.stdin.readline() if str(password_file) == "-" else password_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            print(f"error: --password-file: cannot read {password_file}: {exc}; nothing was changed", file=sys.stderr)
            raise typer.Exit(2) from None
        line = text.splitlines()[0] if text.splitlines() else ""
        if not line:
            print(f"error: --password-file: {password_file} has no password on its first line; nothing was changed",
                  file=sys.stderr)  # fmt: skip
            raise typer.Exit(2)
        return line
    env = os.environ.get("PACSLB_PASSWORD")
    if env:
        return env
    if not sys.stdin.isatty():
        line = sys.stdin.readline().rstrip("\n")
        if line:
            return line
        print("error: give the password with --password-file FILE, PACSLB_PASSWORD or on standard input", file=sys.stderr)
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
    username: UsernameArgument,
    role: RoleOption = "viewer",
    password_file: PasswordFileOption = None,
    generate: GenerateOption = False,
    state_dir_option: StateDirOption = None,
    removed_password: RemovedPasswordOption = None,
) -> None:
    """Add a user with a role (default viewer)."""
    from ..store.users import UserError, new_password

    secret = new_password() if generate else _password(password_file, removed_password)
    _, users, audit = _stores(state_dir_option)
    try:
        users.add(username, secret, role, must_change_password=generate)
    except UserError as exc:
        _fail(exc, audit, "user.create", username)
    audit.record(_who(), "user.create", target=username, via="cli", detail={"role": role})
    print(f"added {username} ({role})" + (f"; one-time password (to change at the first login): {secret}" if generate else ""))


@user_app.command("passwd")
def passwd(
    username: UsernameArgument,
    password_file: PasswordFileOption = None,
    generate: GenerateOption = False,
    state_dir_option: StateDirOption = None,
    removed_password: RemovedPasswordOption = None,
) -> None:
    """Set a user's password (their WebUI sessions end, and their API keys are deleted)."""
    from ..api.state import forget_initial_password
    from ..store.users import UserError, new_password

    secret = new_password() if generate else _password(password_file, removed_password)
    root, users, audit = _stores(state_dir_option)
    try:
        keys = users.set_password(username, secret, must_change_password=generate)
    except UserError as exc:
        _fail(exc, audit, "user.password", username)
    forget_initial_password(root, username)
    audit.record(_who(), "user.password", target=username, via="cli", detail={"api_keys_deleted": keys} if keys else None)
    print(
        f"changed the password of {username}"
        + (f"; one-time password (to change at the next login): {secret}" if generate else "")
    )
    if keys:
        print(f"deleted {username}'s {keys} API key{'s' if keys != 1 else ''} (they die with the old password)",
              file=sys.stderr)  # fmt: skip


@user_app.command("role")
def role(username: UsernameArgument, new_role: Annotated[str, typer.Argument(metavar="ROLE", help="admin, operator or viewer")],
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
def delete(username: UsernameArgument, state_dir_option: StateDirOption = None) -> None:
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
        one_time = "\tone-time password (to change at the next login)" if user.must_change_password else ""
        print(f"{user.username}\t{user.role}\tchanged {changed}\t{len(mine)} API key{'s' if len(mine) != 1 else ''}{one_time}"
              + "".join(f"\n  key {k.id}  {k.name or '-'}  {_expiry(k.expires_at)}" for k in mine))  # fmt: skip


def _expiry(expires_at: float | None) -> str:
    import datetime as dt
    import time

    if expires_at is None:
        return "no expiry"
    when = dt.datetime.fromtimestamp(expires_at).strftime("%Y-%m-%d %H:%M")
    return f"expired {when}" if expires_at <= time.time() else f"expires {when}"


@user_app.command("apikey")
def apikey(
    username: UsernameArgument,
    name: Annotated[str, typer.Option("--name", help="what the key is for, e.g. 'monitoring'")] = "",
    days: Annotated[int, typer.Option("--days", min=1, max=3650, help="the key stops working after this many days")] = 90,
    delete_key: Annotated[str | None, typer.Option("--delete", metavar="KEY_ID", help="delete this key instead")] = None,
    state_dir_option: StateDirOption = None,
) -> None:
    """Make an API key for a user (printed once: it is stored hashed), or --delete one.

    Scripts send it as 'Authorization: Bearer KEY'; it has its user's role, expires after --days (90 by
    default), and is deleted when its user's password changes.
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
        key, token = users.add_api_key(username, name, days)
    except UserError as exc:
        _fail(exc, audit, "api-key.create", username)
    audit.record(_who(), "api-key.create", target=username, via="cli",
                 detail={"id": key.id, "name": key.name, "expires_at": key.expires_at})  # fmt: skip
    print(token)
    print(f"API key {key.id} for {username}, {_expiry(key.expires_at)}: keep it now, it cannot be shown again", file=sys.stderr)


@user_app.command("unblock")
def unblock(username: UsernameArgument, state_dir_option: StateDirOption = None) -> None:
    """Lift a user's login back-off from every address (after failed logins); the running appliance applies it
    at the user's next login."""
    _, users, audit = _stores(state_dir_option)
    if users.get(username) is None:
        print(f"warning: there is no user {username} (unblocked anyway: a back-off counts tried names too)", file=sys.stderr)
    users.unblock(username)
    audit.record(_who(), "user.unblock", target=username, via="cli")
    print(
        f"unblocked {username}: the login back-off is lifted from every address (a running appliance applies it at "
        "the next login; an address that tried many names stays held back)"
    )
