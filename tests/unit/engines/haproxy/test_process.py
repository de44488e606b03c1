"""The pure parts of the master-worker process code: `show proc`, the command line, /proc helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pacslb.engines.haproxy import process
from pacslb.paths import StatePaths

DATA = Path(__file__).parent / "data"


def test_show_proc_after_start():
    table = process.parse_show_proc((DATA / "show_proc.txt").read_text())
    assert table.master.kind == "master" and table.master.reloads == 0 and table.master.failed == 0
    assert [w.reloads for w in table.workers] == [0]
    assert table.current_workers == table.workers and table.old_workers == ()
    assert table.master.version.startswith("2.6")


def test_show_proc_after_failed_reload():
    table = process.parse_show_proc((DATA / "show_proc_failed_reload.txt").read_text())
    assert (table.master.reloads, table.master.failed) == (1, 1)
    assert table.current_workers == () and len(table.old_workers) == 1  # the old worker still serves


def test_show_proc_with_old_and_new_workers():
    text = """#<PID>          <type>          <reloads>       <uptime>        <version>
100             master          2 [failed: 0]   0d00h01m00s     2.6.12-1+deb12u4
# workers
300             worker          0               0d00h00m01s     2.6.12-1+deb12u4
200             worker          1               0d00h00m59s     2.6.12-1+deb12u4
# programs
"""
    table = process.parse_show_proc(text)
    assert [w.pid for w in table.current_workers] == [300]
    assert [w.pid for w in table.old_workers] == [200]


@pytest.mark.parametrize("text", ["", "Unknown command.\n", "# workers\n12 worker 0 0d 2.6\n"])
def test_not_show_proc(text):
    with pytest.raises(process.HAProxyError):
        process.parse_show_proc(text)


def test_command_line_and_state_dir_recognition(tmp_path):
    paths = StatePaths(tmp_path)
    argv = process.command_line(paths, "/usr/sbin/haproxy")
    assert argv[:2] == ["/usr/sbin/haproxy", "-W"]
    assert f"{paths.haproxy_master_socket},mode,600" in argv
    assert argv[argv.index("-f") + 1] == str(paths.haproxy_config)
    assert argv[argv.index("-p") + 1] == str(paths.haproxy_pid)
    assert process.serves_state_dir(argv, paths)
    # a worker after a reload carries extra options first
    assert process.serves_state_dir(["haproxy", "-sf", "12", "-x", "sockpair@3", *argv[1:]], paths)
    assert not process.serves_state_dir(process.command_line(StatePaths(tmp_path / "other")), paths)
    assert not process.serves_state_dir(["python", "-S", str(paths.haproxy_master_socket)], paths)
    assert not process.serves_state_dir([], paths)


def test_check_messages():
    output = (
        "[NOTICE]   (12) : haproxy version is 2.6.12\n"
        "[ALERT]    (12) : config : parsing [h.cfg:20] : unknown keyword 'bogus' in 'backend' section\n"
        "[WARNING]  (12) : config : something odd\n"
    )
    result = process.CheckResult(False, output)
    assert result.messages == [
        "alert: config : parsing [h.cfg:20] : unknown keyword 'bogus' in 'backend' section",
        "warning: config : something odd",
    ]


def test_proc_helpers_see_zombies_as_gone():
    assert process.is_running(os.getpid())
    assert process.proc_ppid(os.getpid()) == os.getppid()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        # until it is reaped the child is a zombie: it exists, but does not run
        for _ in range(200):
            if process.proc_state(child.pid) == "Z":
                break
            subprocess.run(["sleep", "0.01"])
        assert process.proc_state(child.pid) == "Z"
        assert not process.is_running(child.pid)
    finally:
        child.wait(timeout=10)
    assert process.proc_state(child.pid) is None


def test_pidfile(tmp_path):
    path = tmp_path / "haproxy.pid"
    assert process.read_pidfile(path) is None
    path.write_text("1234\n")
    assert process.read_pidfile(path) == 1234
    path.write_text("garbage")
    assert process.read_pidfile(path) is None


# --- the workers' chroot and identity ------------------------------------------------------------


def test_the_chroot_is_made_empty_with_mode_0755_and_owned_by_root(tmp_path):
    paths = StatePaths(tmp_path / "state")
    process.prepare_chroot(paths)
    found = paths.haproxy_chroot.lstat()
    assert paths.haproxy_chroot.is_dir() and list(paths.haproxy_chroot.iterdir()) == []
    assert oct(found.st_mode & 0o7777) == "0o755"
    if os.geteuid() == 0:
        assert (found.st_uid, found.st_gid) == (0, 0)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give the directory away and take it back")
def test_a_chroot_left_writable_or_given_away_is_taken_back(tmp_path):
    paths = StatePaths(tmp_path / "state")
    paths.haproxy_chroot.mkdir(parents=True)
    os.chmod(paths.haproxy_chroot, 0o777)
    os.chown(paths.haproxy_chroot, 65534, 65534)
    process.prepare_chroot(paths)
    found = paths.haproxy_chroot.lstat()
    assert (oct(found.st_mode & 0o7777), found.st_uid, found.st_gid) == ("0o755", 0, 0)


def test_a_chroot_that_is_no_directory_is_refused(tmp_path):
    paths = StatePaths(tmp_path / "state")
    paths.haproxy_dir.mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    paths.haproxy_chroot.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(process.HAProxyError, match="chroot.*must be a directory"):
        process.prepare_chroot(paths)


def test_a_missing_worker_user_or_group_is_named_with_the_fix():
    assert process.worker_identity_problems("root", "root") == []
    problems = process.worker_identity_problems("pacslb-no-such-user", "pacslb-no-such-group")
    assert len(problems) == 2
    assert "'pacslb-no-such-user'" in problems[0] and "useradd --system" in problems[0]
    assert "'pacslb-no-such-group'" in problems[1] and "groupadd --system" in problems[1]
