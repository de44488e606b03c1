"""Moved to tests/support/netns.py (Lab) and tests/support/wait.py (wait_until).

Kept only for bench/layer4.py, which puts tests/netns on sys.path and imports `netns_support.Lab`;
new code imports `support.netns` with tests/ on sys.path.
"""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.append(_TESTS)

from support.netns import IP, Lab  # noqa: E402,F401
from support.wait import wait_until  # noqa: E402,F401
