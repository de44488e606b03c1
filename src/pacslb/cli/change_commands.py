"""Commands that change the running configuration, each change a revision: server, apply, rollback;
and the commands that read the history: revisions, diff.

server / apply / rollback ask the running controller (its API); revisions and diff read the store in
the state directory, so they work whether or not the appliance runs (`revisions prune` writes it:
SQLite's locking makes that safe beside a running controller).

Exit status: 0 done (or nothing to do, or a dry run); 2 the configuration is not valid (one line per
problem, `field.path: message`); 1 refused (HAProxy rejected the file, the reload failed, ...: the
previous configuration keeps serving), no such service / real server / revision, or no controller runs.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from . import app
from .common import EXIT_INVALID, StateDirOption, state_paths

CHANGE_TIMEOUT = 600.0  # a reload of a large configuration, with its check, may take a while

server_app = typer.Typer(
    help="Runtime control of a real server: drain, halt, online, weight (no reload; recorded as a revision).",
    no_args_is_help=True,
)
app.add_typer(server_app, name="server")

MessageOption = Annotated[str | None, typer.Option("--message", "-m", help="why: recorded in the revision")]
AuthorOption = Annotated[str | None, typer.Option("--author", help="who: recorded in the revision (default: your user name)")]
JsonOption = Annotated[bool, typer.Option("--json", help="print the controller's answer as JSON")]
# revisions, prune and diff read revisions.sqlite in the state directory themselves: no controller answers them
StoreJsonOption = Annotated[
    bool, typer.Option("--json", help="print the result as JSON (read from the state directory: the appliance may be stopped)")
]
AllOption = Annotated[
    bool, typer.Option("--all", help="every virtual service this real server (its address and port) belongs to")
]


def _client(option: Path | None):
    from ..controller.client import ControllerClient

    return ControllerClient(state_paths(option), timeout=CHANGE_TIMEOUT)


def _call(option: Path | None, call) -> dict[str, Any]:
    from ..controller.client import ControllerError, ControllerUnavailable

    paths = state_paths(option)
    try:
        return call(_client(option))
    except ControllerError as exc:  # it runs, and refused: say what it said (a body too large or invalid exits 2)
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(EXIT_INVALID if exc.status in (413, 422) else 1) from None
    except ControllerUnavailable as exc:
        print(
            f"error: no controller answers on {paths.root} ({exc}); start the appliance with "
            f"'pacslb up --state-dir {paths.root}'",
            file=sys.stderr,
        )
        raise typer.Exit(1) from None


def _author(author: str | None) -> str:
    from ..change.service import default_author

    return author or default_author()


def _report(result: dict[str, Any], as_json: bool, show_plan: bool = True) -> None:
    """Print a change's answer and exit with its status."""
    outcome = result.get("outcome")
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        plan = result.get("plan")
        if show_plan and plan and outcome not in ("unchanged",):
            for line in plan.get("text", []):
                print(line)
        for problem in result.get("problems", []):
            prefix = "warning: " if problem.get("severity") == "warning" else ""
            where = f"{problem['path']}: " if problem.get("path") else ""
            print(f"{prefix}{where}{problem['message']}", file=sys.stderr)
        for warning in result.get("warnings", []):
            print(f"warning: {warning}", file=sys.stderr)
        stream = sys.stdout if outcome in ("applied", "unchanged", "dry-run") else sys.stderr
        print(("" if stream is sys.stdout else "error: ") + result.get("message", ""), file=stream)
        for message in result.get("messages", []):
            print(f"  {message}", file=sys.stderr)
        engine = result.get("engine") or {}
        if outcome == "applied" and engine.get("fallback"):
            print(f"note: a runtime operation failed ({engine['fallback']}); a hitless reload applied the change")
        if outcome == "applied" and "workers_before" in engine:
            same = engine["workers_before"] == engine.get("workers_after")
            print(
                f"HAProxy workers: {', '.join(map(str, engine.get('workers_after') or [])) or '-'}"
                + (" (unchanged)" if same else f" (were {', '.join(map(str, engine['workers_before']))})")
            )
    if outcome == "invalid":
        raise typer.Exit(EXIT_INVALID)
    if outcome not in ("applied", "unchanged", "dry-run"):
        raise typer.Exit(1)


# --- server -------------------------------------------------------------------------------------


def _state_command(state: str):
    def command(
        service: Annotated[str, typer.Argument(help="virtual service")],
        real_server: Annotated[str, typer.Argument(help="real server")],
        every_service: AllOption = False,
        message: MessageOption = None,
        author: AuthorOption = None,
        state_dir_option: StateDirOption = None,
        as_json: JsonOption = False,
    ) -> None:
        body = {"state": state, "all": every_service, "author": _author(author), "message": message}
        _report(_call(state_dir_option, lambda c: c.set_real_server_state(service, real_server, body)), as_json)

    return command


_HELP = {
    "drain": "Drain a real server: existing sessions and persistent clients finish, no new ones come.",
    "halt": "Halt a real server: no traffic at all, at once.",
    "online": "Return a real server to service, with its configured weight.",
}
for _state, _help in _HELP.items():
    server_app.command(_state, help=_help)(_state_command(_state))


@server_app.command("weight")
def weight(
    service: Annotated[str, typer.Argument(help="virtual service")],
    real_server: Annotated[str, typer.Argument(help="real server")],
    value: Annotated[int, typer.Argument(help="weight, 0 to 256", min=0, max=256)],
    message: MessageOption = None,
    author: AuthorOption = None,
    state_dir_option: StateDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Set a real server's weight (its share of new connections)."""
    body = {"weight": value, "author": _author(author), "message": message}
    _report(_call(state_dir_option, lambda c: c.set_real_server_weight(service, real_server, body)), as_json)


# --- apply and rollback -------------------------------------------------------------------------


@app.command()
def apply(
    config: Annotated[Path, typer.Option("--config", "-c", help="configuration file to apply")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="validate, check with HAProxy and print the plan; change nothing")
    ] = False,
    message: MessageOption = None,
    author: AuthorOption = None,
    state_dir_option: StateDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Apply a configuration file to the running appliance as a new revision.

    Prints the plan: runtime operations (no reload) when they suffice, else a hitless reload and why.
    A change that fails leaves the previous configuration serving and says why.
    """
    from ..model.files import read_config_text
    from ..model.load import parse_yaml
    from .common import print_problems

    text = read_config_text(config)  # a regular file of bounded size: never a device read without end
    if not isinstance(text, str):
        print(f"error: cannot read {config}: {text.message}; nothing was changed", file=sys.stderr)
        raise typer.Exit(EXIT_INVALID)
    # Parsed here and sent as JSON too: YAML parsing is the costly part of a large file, and this process ends.
    data, problems = parse_yaml(text)
    if problems:
        print_problems(problems)
        print(f"{config}: not valid YAML; nothing was changed", file=sys.stderr)
        raise typer.Exit(EXIT_INVALID)
    body = {
        "yaml": text,
        **({"config": data} if _plain_json(data) else {}),
        "base_dir": str(config.resolve().parent),
        "dry_run": dry_run,
        "author": _author(author),
        "message": message or f"pacslb apply -c {config}",
    }
    _report(_call(state_dir_option, lambda c: c.apply(body)), as_json)


def _plain_json(data: Any) -> bool:
    """Whether JSON carries `data` unchanged (no dates, binary, sets, or keys that are not text)."""
    if isinstance(data, dict):
        return all(isinstance(k, str) and _plain_json(v) for k, v in data.items())
    if isinstance(data, list):
        return all(_plain_json(v) for v in data)
    return data is None or isinstance(data, (str, int, float, bool))


@app.command()
def rollback(
    revision: Annotated[int, typer.Argument(help="the revision to return to (see 'pacslb revisions')")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the plan; change nothing")] = False,
    message: MessageOption = None,
    author: AuthorOption = None,
    state_dir_option: StateDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Return to the configuration of an earlier revision (recorded as a new revision)."""
    body = {"dry_run": dry_run, "author": _author(author), "message": message}
    _report(_call(state_dir_option, lambda c: c.rollback(revision, body)), as_json)


# --- revisions and diff -------------------------------------------------------------------------


def _store(option: Path | None):
    from ..store import RevisionStore, StoreError

    paths = state_paths(option)
    try:
        return RevisionStore(paths.revisions_db, create=False)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None


def _secret_store(option: Path | None, without: str = "changes of secrets alone are not shown"):
    """The secret store when this user may read it (root: secrets.sqlite is mode 0600), else None, saying what
    is done `without` it."""
    from ..store import SecretStore, StoreError

    path = state_paths(option).secrets_db
    if not path.exists():
        return None
    if not os.access(path, os.R_OK):
        print(f"note: {path} cannot be read by this user: {without}", file=sys.stderr)
        return None
    try:
        return SecretStore(path, create_file=False)
    except StoreError:
        return None


def _when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp else "-"


revisions_app = typer.Typer(
    help="The latest revisions: who changed what, when, why, and whether it was applied ('*' marks the one that "
    "runs); 'pacslb revisions prune --keep N' deletes the oldest by hand.",
    invoke_without_command=True,
)
app.add_typer(revisions_app, name="revisions")


def _kept_line(info: dict) -> str:
    """What the store keeps, in a sentence (under the table of `pacslb revisions`)."""
    line = (f"kept: the latest {info['keep']} revisions ({info['setting']}); {info['stored']} stored, "
            f"the oldest {info['oldest'] if info['oldest'] is not None else '-'}")  # fmt: skip
    pruned = info["pruned"]
    if pruned:
        line += f"; {pruned['count']} older ones pruned, the last on {_when(pruned['at'])} (up to revision {pruned['through']})"
    return line


@revisions_app.callback()
def revisions(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", help="how many, the latest first", min=1)] = 20,
    state_dir_option: StateDirOption = None,
    as_json: StoreJsonOption = False,
) -> None:
    """The latest revisions: who changed what, when, why, and whether it was applied ('*' marks the one that runs)."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    store = _store(state_dir_option)
    found = store.list(limit)
    current = store.current_id()
    kept = store.retention()
    if as_json:
        print(json.dumps({"current": current, "revisions": [r.summary() for r in found], "kept": kept}, indent=2))
        return
    table = Table(title=f"revisions on {store.path.parent}", title_justify="left")
    for column in ("rev", "time", "author", "kind", "status", "how", "message"):
        table.add_column(column, no_wrap=column != "message")
    styles = {"applied": "green", "failed": "red", "pending": "yellow"}
    for rev in found:
        mark = "*" if rev.id == current else " "
        status = f"[{styles[rev.status.value]}]{rev.status.value}[/]"
        why = rev.message + (f" ({rev.error.splitlines()[0]})" if rev.error else "")
        table.add_row(f"{mark}{rev.id}", _when(rev.created_at), escape(rev.author), rev.kind, status,
                      (rev.plan or {}).get("method") or "-", escape(why))  # fmt: skip
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    print(_kept_line(kept))  # one line, unwrapped, for people and for grep


@revisions_app.command("prune")
def prune(
    keep: Annotated[int, typer.Option("--keep", help="revisions to keep, the latest ones (at least 10)")],
    vacuum: Annotated[
        bool,
        typer.Option(
            "--vacuum",
            help="give all free space back to the file system; a store made before pruning "
            "existed is rewritten once (VACUUM: needs free disk as large as the kept revisions)",
        ),
    ] = False,
    state_dir_option: StateDirOption = None,
    as_json: StoreJsonOption = False,
) -> None:
    """Delete the oldest revisions beyond --keep now (never the one that runs, nor a pending one).

    The appliance does the same after each applied revision, with settings.revisions.keep; this is for a
    lower number at once (before a backup, say). Safe while the appliance runs."""
    from ..store import StoreError
    from ..store.pruning import MIN_KEEP

    if keep < MIN_KEEP:
        print(f"error: --keep: at least {MIN_KEEP} (it is {keep}); nothing was deleted", file=sys.stderr)
        raise typer.Exit(EXIT_INVALID)
    store = _store(state_dir_option)
    try:
        done = store.prune(keep, vacuum=vacuum)
        secrets = _secret_store(state_dir_option, "the controller's next start deletes the pruned revisions' secrets")
        if done.deleted and secrets is not None:
            secrets.forget(done.deleted)  # else the controller's next start deletes them
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(done.as_dict(), indent=2))
        return
    if done.deleted:
        print(f"pruned {len(done.deleted)} revision(s), {done.deleted[0]} to {done.deleted[-1]}: {done.kept} kept")
    else:
        print(f"nothing to prune: {done.kept} revision(s) stored, --keep {keep}")
    if done.pages_freed:
        print(f"gave back {done.pages_freed} pages of free space to the file system")
    current_keep = store.retention()["keep"]
    if keep < current_keep:
        print(f"note: settings.revisions.keep is {current_keep}: the store fills up to that again; lower it to keep fewer")


@app.command()
def diff(
    revision: Annotated[int | None, typer.Argument(help="from this revision (default: the one before the current)")] = None,
    other: Annotated[int | None, typer.Argument(help="to this revision (default: the one that runs)")] = None,
    state_dir_option: StateDirOption = None,
    as_json: StoreJsonOption = False,
) -> None:
    """What changed, in the model's words: 'pacslb diff' shows the last change; 'pacslb diff REV' what changed
    since REV (what 'pacslb rollback REV' would undo); 'pacslb diff REV OTHER' between two revisions."""
    from ..store import StoreError
    from ..store.history import revision_diff

    store = _store(state_dir_option)
    try:
        found = revision_diff(store, revision, other, _secret_store(state_dir_option))
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(found.as_dict(), indent=2))
        return
    if found.old is None:
        print(f"revision {found.new.id} is the first one: there is nothing before it to compare with")
        return
    print(f"from revision {found.old.id} to revision {found.new.id}:")
    if not found.changes:
        print("  no change")
    for change in found.changes:
        print(f"  {change}")
