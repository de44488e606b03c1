"""`--help` as an administrator reads it: every option and argument of every command says what it is for, and the
commands that read revisions.sqlite themselves (revisions, revisions prune, diff) do not claim a controller's answer."""

from __future__ import annotations

import re

import pytest
import typer

from pacslb.cli import app

COMMAND = typer.main.get_command(app)


def commands(group=COMMAND, path: tuple[str, ...] = ()):
    """Every command and group under `group`, with its path ('server', 'drain'); typer's own click is vendored, so
    a group is what has commands."""
    yield path, group
    if getattr(group, "commands", None):
        for name, sub in group.commands.items():
            yield from commands(sub, (*path, name))


EVERY = list(commands())


@pytest.mark.parametrize(("path", "command"), EVERY, ids=[" ".join(p) or "pacslb" for p, _ in EVERY])
def test_every_option_and_argument_has_a_help_text(path, command):
    shown = [
        p for p in command.params if p.name != "help" and not getattr(p, "hidden", False)
    ]  # a hidden one refuses with its own message
    silent = [p.name for p in shown if not (getattr(p, "help", None) or "").strip()]
    assert not silent, f"pacslb {' '.join(path)}: {silent} without a help text"


@pytest.mark.parametrize("path", [("revisions",), ("revisions", "prune"), ("diff",)])
def test_json_of_the_commands_that_read_the_store_names_no_controller(path):
    command = COMMAND
    for name in path:
        command = command.commands[name]
    json_help = next(p.help for p in command.params if p.name == "as_json")
    assert "controller" not in json_help and re.search(r"state directory", json_help), json_help


def test_json_of_the_commands_the_controller_answers_says_so():
    for path in (("apply",), ("rollback",), ("server", "drain")):
        command = COMMAND
        for name in path:
            command = command.commands[name]
        assert "controller's answer" in next(p.help for p in command.params if p.name == "as_json"), path
