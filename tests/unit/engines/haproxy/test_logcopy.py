"""The HAProxy engine copies HAProxy's notices, warnings and alerts from haproxy.log to the controller's log, and rotates it."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from pacslb.engines.haproxy import logcopy
from pacslb.paths import StatePaths


def controller(tmp_path):
    paths = StatePaths(tmp_path)
    paths.haproxy_dir.mkdir(parents=True)
    log = paths.haproxy_log
    return SimpleNamespace(
        paths=paths,
        _log_size=lambda: logcopy.log_size(log),
        _copy_new_log_lines=lambda position, pending: logcopy.copy_new_lines(log, position, pending),
    )


def test_copies_haproxy_messages_at_their_level(tmp_path, caplog):
    c = controller(tmp_path)
    log = c.paths.haproxy_log
    log.write_bytes(b"[NOTICE]   (7) : before this controller\n")
    start = c._log_size()
    with open(log, "ab") as f:
        f.write(b"127.0.0.1:5 [27/Nov/2026] web web/rs1 0/0/1/1/2 200 - a traffic line, not copied\n")
        f.write(b"[WARNING]  (8) : Server web/rs2 is DOWN, reason: Layer4 connection problem\n")
        f.write(b"[ALERT]    (8) : backend 'web' has no server available!\n[NOTICE]   (7) : half a li")
    with caplog.at_level(logging.INFO, logger="pacslb.haproxy"):
        position, pending = c._copy_new_log_lines(start, b"")
        with open(log, "ab") as f:
            f.write(b"ne\n")
        c._copy_new_log_lines(position, pending)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "(8) Server web/rs2 is DOWN, reason: Layer4 connection problem"),
        (logging.ERROR, "(8) backend 'web' has no server available!"),
        (logging.INFO, "(7) half a line"),
    ]


def test_rotates_a_large_log(tmp_path, monkeypatch):
    monkeypatch.setattr(logcopy, "LOG_ROTATE_BYTES", 100)
    c = controller(tmp_path)
    c.paths.haproxy_log.write_bytes(b"x" * 150 + b"\n")
    position, _ = c._copy_new_log_lines(0, b"")
    assert position == 0
    assert c.paths.haproxy_log.stat().st_size == 0
    assert c.paths.haproxy_log.with_name("haproxy.log.1").stat().st_size == 151
    c.paths.haproxy_log.write_bytes(b"[NOTICE]   (1) : after\n")  # read from the start again
    assert c._copy_new_log_lines(position, b"")[0] == 23
