"""statedir.py: which state directories are trusted, and how a missing one is made (docs/security.md)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from pacslb import statedir
from pacslb.controller.lock import ControllerLock
from pacslb.model import load_text
from pacslb.paths import StatePaths
from pacslb.statedir import UntrustedStateDir, problem, trusted
from support.unprivileged import local_user


def test_the_test_suites_own_temporary_directories_are_trusted(tmp_path) -> None:
    """pytest's tmp_path (root-owned 0700 under /tmp/pytest-of-root) and /tmp itself (sticky) as parents."""
    assert problem(tmp_path) is None
    assert trusted(tmp_path / "state", create=True) == tmp_path / "state"


def test_a_missing_state_directory_and_its_parents_are_made_with_exact_modes_whatever_the_umask(tmp_path) -> None:
    old = os.umask(0)
    try:
        made = trusted(tmp_path / "a" / "state", create=True)
    finally:
        os.umask(old)
    assert made.stat().st_mode & 0o7777 == statedir.STATE_DIR_MODE == 0o750
    assert (tmp_path / "a").stat().st_mode & 0o7777 == 0o755
    assert problem(made) is None


def test_a_state_directory_owned_by_another_user_or_writable_by_others_is_refused(tmp_path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    os.chmod(state, 0o770)
    assert "writable by its group or others (mode 0770" in problem(state)
    os.chmod(state, 0o1777)  # a sticky bit does not help the state directory itself: others could still plant files
    assert "writable by its group or others (mode 1777" in problem(state)
    os.chmod(state, 0o750)
    with local_user() as user:
        os.chown(state, user.pw_uid, user.pw_gid)
        why = problem(state)
        assert why.startswith(f"the state directory {state} is owned by {user.pw_name} (uid {user.pw_uid}), not root")
        assert f"chown root:root {state} && chmod 0750 {state}" in why
        with pytest.raises(UntrustedStateDir, match="is owned by"):
            trusted(state, create=True)
        with pytest.raises(UntrustedStateDir, match="is owned by"):
            ControllerLock(StatePaths(state)).acquire()  # the controller's start
        os.chown(state, 0, 0)


def test_a_parent_owned_by_another_user_or_writable_without_the_sticky_bit_is_refused(tmp_path) -> None:
    parent = tmp_path / "parent"
    parent.mkdir()
    state = parent / "state"  # missing: judged by its parents
    os.chmod(parent, 0o777)
    assert f"{parent}, a parent of the state directory {state}, is writable by its group or others (mode 0777)" in problem(state)
    os.chmod(parent, 0o1777)  # sticky, like /tmp: nobody else can rename or remove the state directory
    assert problem(state) is None
    os.chmod(parent, 0o755)
    with local_user() as user:
        os.chown(parent, user.pw_uid, user.pw_gid)
        assert f"{parent}, a parent of the state directory {state}, is owned by {user.pw_name}" in problem(state)
        with pytest.raises(UntrustedStateDir):
            trusted(state, create=True)
        assert not state.exists()  # nothing made under another user's directory
        os.chown(parent, 0, 0)


def test_a_symbolic_link_is_resolved_so_that_it_cannot_be_repointed_after_the_check(tmp_path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    assert trusted(link) == real
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.chmod(elsewhere, 0o777)
    link.unlink()
    link.symlink_to(elsewhere)
    with pytest.raises(UntrustedStateDir, match=f"the state directory {elsewhere} is writable"):
        trusted(link)


def test_the_controller_refuses_to_start_on_a_state_directory_another_user_owns(tmp_path) -> None:
    from pacslb.appliance import Appliance

    state = tmp_path / "state"
    state.mkdir()
    config_file = tmp_path / "pacslb.yaml"
    config_file.write_text("version: 1\n")
    with local_user() as user:
        os.chown(state, user.pw_uid, user.pw_gid)
        appliance = Appliance(StatePaths(state), config_file, load_text("version: 1\n").config)
        assert asyncio.run(appliance.run("version: 1\n")) == 1
        assert not (state / "revisions.sqlite").exists()
        os.chown(state, 0, 0)


def test_the_demo_state_directory_is_not_in_tmp() -> None:
    from pacslb.demo.truepacs import DEFAULT_STATE_DIR

    assert not DEFAULT_STATE_DIR.is_relative_to(Path("/tmp")) and DEFAULT_STATE_DIR.is_absolute()


def test_user_commands_make_a_missing_state_directory_0750_and_refuse_another_users(tmp_path) -> None:
    import subprocess

    from support.appliance import pacslb

    made = tmp_path / "new"
    done = subprocess.run(pacslb("user", "list", state_dir=made), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert made.stat().st_mode & 0o7777 == 0o750
    with local_user() as user:
        os.chown(made, user.pw_uid, user.pw_gid)
        done = subprocess.run(pacslb("user", "list", state_dir=made), capture_output=True, text=True, timeout=60)
        os.chown(made, 0, 0)
    assert done.returncode == 1 and f"error: the state directory {made} is owned by {user.pw_name}" in done.stderr
