"""Rewrite patterns the model takes load in the real HAProxy (PCRE2), and the Python-only forms it refuses are
ones PCRE2 refuses too: model/rewrite.py's check is what HAProxy would say, said before anything runs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from pacslb.engines.haproxy.quoting import render_line
from pacslb.engines.haproxy.rules import prefix_regex, rewrite_actions
from pacslb.model.rewrite import pattern_problem

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"

TAKEN = [
    r"^/viewer/study/([0-9.]+)$",
    r"(?i)^/VIEWER/(\d+)",
    r"^/(?P<study>[0-9.]+)/x$",
    r"^/a(?:b|c)+/(.*)",
    r"(?>/a)(.*)",
    r"^/x/([^/]+)/y/(.*)",
    r"^/a\x2fb",
    r"/a{0,3}",
    r'^/"quoted"\$(.*)',
    r"(?#why)^/c",
    r"^/a/(?=b)(.*)",
    r"^/a/(?<!x)b",
    "x" * 256,
    prefix_regex("/a.b+(c)[d]$%20/"),
]
# Python's re compiles these; PCRE2 does not
REFUSED_BY_BOTH = [r"\N{DIGIT ONE}", r"/\u0041", "(?a)/x", f"(?P<{'n' * 33}>x)"]


def _check(tmp_path: Path, patterns: list[str]) -> subprocess.CompletedProcess[str]:
    lines = []
    for i, pattern in enumerate(patterns):
        # a stand-in with the Rewrite's fields: the model would refuse the patterns this test feeds HAProxy
        rewrite = SimpleNamespace(path_prefix=None, path_regex=SimpleNamespace(pattern=pattern, replace=f"/r{i}"), host=None)
        lines += [render_line(a) for a in rewrite_actions(rewrite, ("TRUE",))]  # type: ignore[arg-type]
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n"
        "frontend f\n    bind 127.0.0.1:8080\n"  # -c parses the bind; it does not listen
        + "".join(f"    {line}\n" for line in lines)
        + "    default_backend b\n"
        "backend b\n    server s 127.0.0.1:9\n"
    )
    return subprocess.run([HAPROXY, "-c", "-f", str(config)], capture_output=True, text=True, timeout=60)


@pytest.mark.engine
def test_what_the_model_takes_haproxy_loads(tmp_path: Path) -> None:
    assert Path(HAPROXY).exists(), "haproxy is not installed: `make deps` (Debian package haproxy)"
    assert [p for p in TAKEN if pattern_problem(p)] == []
    result = _check(tmp_path, TAKEN)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.engine
@pytest.mark.parametrize("pattern", REFUSED_BY_BOTH)
def test_what_the_model_refuses_haproxy_refuses_too(pattern: str, tmp_path: Path) -> None:
    assert pattern_problem(pattern) is not None
    result = _check(tmp_path, [pattern])
    assert result.returncode != 0, f"HAProxy took {pattern!r}: the model refuses it without need"
    assert "replace-path" in result.stderr + result.stdout, "HAProxy refused something other than the pattern"
