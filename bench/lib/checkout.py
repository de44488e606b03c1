"""The checkout a benchmark script runs from: its folders, and pacslb and tests/support importable from it."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]
REPO = BENCH.parent


def use_checkout(tests: bool = True) -> None:
    """Put the checkout's src/ on sys.path if pacslb is not installed (a checkout without `pip install -e .`), and
    its tests/ with `tests` (the beds of tests/support, which bench scripts share with the tests)."""
    try:
        import pacslb  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(REPO / "src"))
    if tests:
        sys.path.insert(0, str(REPO / "tests"))
