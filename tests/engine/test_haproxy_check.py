"""Every golden haproxy.cfg passes the real `haproxy -c`.

The goldens name fixed, fake paths (/etc/pacslb for certificates, /var/lib/pacslb for state), where
HAProxy would find no certificate. So each case is rendered again with its own directory as base_dir
and a temporary state directory; that text must equal the golden once the paths are mapped back,
and it is the one HAProxy checks.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pacslb.engines.haproxy.env import LUA_DIR
from pacslb.engines.haproxy.render import HAProxyEnv, render
from pacslb.engines.waf.paths import WafPaths
from pacslb.model import load_file
from pacslb.paths import StatePaths

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden" / "haproxy"
# the fixed paths and CPU count of the goldens (tests/unit/engines/haproxy/conftest.py)
GOLDEN_STATE_DIR = "/var/lib/pacslb"
GOLDEN_BASE_DIR = "/etc/pacslb"
GOLDEN_CPU_COUNT = 2
GOLDEN_PRIVILEGES = {"user": "haproxy", "group": "haproxy", "chroot": True}  # haproxy -c looks the user up
GOLDEN_LUA_DIR = "/usr/lib/pacslb/lua"

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"

# Warnings that a case causes on purpose; any other warning fails the test.
EXPECTED_WARNINGS = {
    "028_dns_real_server": ["could not resolve address 'pacs-rs.invalid'"],
}

CASES = sorted(p for p in GOLDEN_DIR.iterdir() if p.is_dir() and re.match(r"^\d{3}_", p.name))


@pytest.mark.engine
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_passes_haproxy_check(case: Path, tmp_path: Path) -> None:
    assert Path(HAPROXY).exists(), "haproxy is not installed: `make deps` (Debian package haproxy)"
    state = StatePaths(tmp_path / "state")
    state.haproxy_dir.mkdir(parents=True)
    state.haproxy_server_state.write_text("1\n")  # an empty state file (version 1); a missing one only warns

    loaded = load_file(case / "config.yaml")
    assert loaded.ok, [str(p) for p in loaded.problems]
    text = render(loaded.config, HAProxyEnv(state_dir=state.root, base_dir=case, cpu_count=GOLDEN_CPU_COUNT, **GOLDEN_PRIVILEGES))

    golden = case / "haproxy.cfg"
    assert golden.exists(), f"{golden} is missing: run `pytest --update-golden` and review the new file"
    # the WAF tier's run directory is named after the state directory (engines/waf/paths.py)
    text = text.replace(str(WafPaths(state.root).run), str(WafPaths(Path(GOLDEN_STATE_DIR)).run))
    mapped = text.replace(str(state.root), GOLDEN_STATE_DIR).replace(str(case), GOLDEN_BASE_DIR)
    mapped = mapped.replace(str(LUA_DIR), GOLDEN_LUA_DIR)  # the checked file loads the package's real Lua scripts
    assert mapped == golden.read_text(), "the checked rendering differs from the golden beyond its paths"

    config_file = tmp_path / "haproxy.cfg"
    config_file.write_text(text)
    result = subprocess.run([HAPROXY, "-c", "-f", str(config_file)], capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output

    expected = EXPECTED_WARNINGS.get(case.name, [])
    warnings = [line for line in output.splitlines() if "[WARNING]" in line]
    unexpected = [w for w in warnings if not any(e in w for e in expected)]
    assert not unexpected, "\n".join(unexpected)
    for e in expected:
        assert any(e in w for w in warnings), f"expected a warning about {e!r}:\n{output}"
