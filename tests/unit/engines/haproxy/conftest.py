"""Golden cases of the HAProxy renderer: one directory per feature under tests/golden/haproxy/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pacslb.engines.haproxy.render import HAProxyEnv

GOLDEN_DIR = Path(__file__).resolve().parents[3] / "golden" / "haproxy"

# Fixed, fake paths, so that the expected files do not depend on the machine or the checkout.
# tests/engine/test_haproxy_check.py renders with real paths and maps them back to these.
GOLDEN_STATE_DIR = Path("/var/lib/pacslb")
GOLDEN_BASE_DIR = Path("/etc/pacslb")
GOLDEN_CPU_COUNT = 2
GOLDEN_PRIVILEGES = {"user": "haproxy", "group": "haproxy", "chroot": True}
GOLDEN_LUA_DIR = Path("/usr/lib/pacslb/lua")  # the package's Lua scripts (HAProxyEnv.lua_dir)


def golden_cases() -> list[Path]:
    """Every case directory (`NNN_feature_name`), in order; `certs/` holds shared files and is no case."""
    return sorted(p for p in GOLDEN_DIR.iterdir() if p.is_dir() and re.match(r"^\d{3}_", p.name))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "golden_case" in metafunc.fixturenames:
        cases = golden_cases()
        metafunc.parametrize("golden_case", cases, ids=[c.name for c in cases])


@pytest.fixture
def golden_env() -> HAProxyEnv:
    # the workers drop root as the controller run by root has them do (engine.py worker_privileges)
    return HAProxyEnv(state_dir=GOLDEN_STATE_DIR, base_dir=GOLDEN_BASE_DIR, cpu_count=GOLDEN_CPU_COUNT,
                      lua_dir=GOLDEN_LUA_DIR, **GOLDEN_PRIVILEGES)  # fmt: skip
