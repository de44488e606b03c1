"""A state directory another user could change is refused by every command that opens one (docs/security.md,
"The state directory"): a users.sqlite planted there would give that user the WebUI's admin account.

A non-root user is made (and removed) by each test that needs one. Were the check missing, `pacslb up`
would start the appliance: the harness stops it by PID at teardown.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pacslb.store.users import UserStore
from support.appliance import Appliance, new_state_dir
from support.configs import tcp_service_config
from support.net import free_port, loopback_host
from support.unprivileged import local_user


def appliance_on(state_dir: Path, http_server, tmp_path: Path) -> Appliance:
    vip = loopback_host(71)
    config = tmp_path / "pacslb.yaml"
    config.write_text(tcp_service_config(free_port(vip), [http_server("rs1")], vip=vip))
    return Appliance(state_dir=state_dir, config=config, log=tmp_path / "pacslb-up.log")


def refused(done, *words: str) -> None:
    assert done.returncode == 1, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    for word in words:
        assert word in done.stderr, done.stderr


def test_a_state_directory_owned_by_another_user_is_refused_by_up_and_user_list(http_server, tmp_path) -> None:
    state_dir = new_state_dir("pacslb-trust-")
    state_dir.mkdir(mode=0o750)
    appliance = appliance_on(state_dir, http_server, tmp_path)
    try:
        with local_user() as user:
            planted = UserStore(state_dir / "users.sqlite")  # what the other user would plant: their admin
            planted.add("mallory", "mallory-password-1", "admin")
            for path in [state_dir, *state_dir.iterdir()]:
                os.chown(path, user.pw_uid, user.pw_gid)
            owner = f"is owned by {user.pw_name} (uid {user.pw_uid}), not root"
            fix = f"chown root:root {state_dir} && chmod 0750 {state_dir}"
            refused(appliance.cli("up", "-c", str(appliance.config)), f"the state directory {state_dir} {owner}", fix)
            assert appliance.haproxy_pid() is None
            listed = appliance.cli("user", "list")
            refused(listed, f"the state directory {state_dir} {owner}", fix)
            assert "mallory" not in listed.stdout
            refused(appliance.cli("revisions"), f"the state directory {state_dir} {owner}")
            refused(appliance.cli("status"), f"the state directory {state_dir} {owner}")
    finally:
        appliance.shut_down()


def test_a_group_writable_state_directory_is_refused(http_server, tmp_path) -> None:
    state_dir = new_state_dir("pacslb-trust-")
    state_dir.mkdir()
    os.chmod(state_dir, 0o770)
    appliance = appliance_on(state_dir, http_server, tmp_path)
    try:
        done = appliance.cli("up", "-c", str(appliance.config))
        refused(done, f"the state directory {state_dir} is writable by its group or others (mode 0770", f"chmod go-w {state_dir}")
        assert appliance.haproxy_pid() is None
        refused(appliance.cli("user", "list"), "writable by its group or others")
    finally:
        appliance.shut_down()


def test_a_parent_owned_by_another_user_is_refused_and_a_missing_state_directory_is_made_0750(http_server,
                                                                                               tmp_path) -> None:  # fmt: skip
    state_dir = new_state_dir("pacslb-trust-", "parent") / "state"
    appliance = appliance_on(state_dir, http_server, tmp_path)
    try:
        with local_user() as user:
            state_dir.parent.mkdir(mode=0o755)
            os.chown(state_dir.parent, user.pw_uid, user.pw_gid)
            done = appliance.cli("up", "-c", str(appliance.config))
            refused(done, f"{state_dir.parent}, a parent of the state directory {state_dir}, is owned by {user.pw_name}")
            assert not state_dir.exists()  # nothing made under another user's directory
            os.chown(state_dir.parent, 0, 0)
        appliance.up()  # the same, root-owned: the missing state directory is made, mode 0750
        assert (state_dir.stat().st_mode & 0o7777, state_dir.stat().st_uid) == (0o750, 0)
        assert appliance.cli("user", "list").returncode == 0
    finally:
        appliance.shut_down()
        shutil.rmtree(state_dir.parent.parent, ignore_errors=True)  # new_state_dir's /tmp/<prefix>XXXX
