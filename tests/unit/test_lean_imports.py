"""lean_imports: httpx's command-line client (click, rich, pygments) stays out of processes that import pacslb."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_importing_pacslb_then_httpx_loads_no_rich_nor_pygments() -> None:
    done = _run(
        "import sys, pacslb, httpx; httpx.Client; print(sorted(m for m in sys.modules if m.split('.')[0] in ('rich', 'pygments')))"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_without_pacslb_first_httpx_loads_them() -> None:
    """The control: what the stand-in saves is there to save (typer brings rich and pygments)."""
    done = _run("import sys, httpx; print('rich' in sys.modules and 'pygments' in sys.modules)")
    assert done.stdout.strip() == "True", done.stderr


def test_httpx_main_says_why_it_is_not_there() -> None:
    done = _run("import pacslb, httpx; httpx.main()")
    assert done.returncode == 1
    assert "httpx's command-line client is not loaded inside pacslb" in done.stderr


def test_too_late_changes_nothing() -> None:
    done = _run("import sys, httpx, pacslb.lean_imports as l; print(l.skip_httpx_cli(), 'rich' in sys.modules)")
    assert done.stdout.split() == ["False", "True"], done.stderr
