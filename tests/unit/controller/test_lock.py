"""One controller per state directory."""

from __future__ import annotations

import os

import pytest

from pacslb.controller.lock import ControllerLock, LockHeld, holder_pid, is_locked
from pacslb.paths import StatePaths


def test_second_lock_is_refused_and_names_the_holder(tmp_path):
    paths = StatePaths(tmp_path / "state")
    assert not is_locked(paths)
    with ControllerLock(paths):
        assert is_locked(paths)
        assert holder_pid(paths) == os.getpid()
        assert paths.controller_pid.read_text().strip() == str(os.getpid())
        with pytest.raises(LockHeld) as refused:
            ControllerLock(paths).acquire()  # another open file description: flock refuses, even in-process
        assert refused.value.pid == os.getpid()
        assert f"PID {os.getpid()}" in str(refused.value)
        assert f"pacslb stop --state-dir {paths.root}" in str(refused.value)
    assert not is_locked(paths)
    assert not paths.controller_pid.exists()


def test_stale_lock_file_does_not_block(tmp_path):
    paths = StatePaths(tmp_path)
    paths.controller_lock.write_text("999999\n")  # left by a controller killed with SIGKILL
    lock = ControllerLock(paths)
    lock.acquire()
    try:
        assert holder_pid(paths) == os.getpid()
    finally:
        lock.release()
