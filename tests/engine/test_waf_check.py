"""Every WAF golden file passes Apache's own checker (`apache2 -t`): modules, directives and every ModSecurity rule
of the Core Rule Set and of the policy, rendered with a real state directory."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from pacslb.engines.waf import process
from pacslb.engines.waf.paths import WafPaths
from pacslb.engines.waf.render import WafEnv, render
from pacslb.model import load_file

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden" / "waf"
CASES = sorted(p for p in GOLDEN_DIR.iterdir() if p.is_dir() and re.match(r"^\d{3}_", p.name))

pytestmark = [pytest.mark.engine, pytest.mark.root]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_passes_apache_check(case: Path, tmp_path: Path) -> None:
    assert shutil.which("apache2"), "apache2 is not installed: `make deps` (apache2, libapache2-mod-security2, modsecurity-crs)"
    loaded = load_file(case / "config.yaml")
    assert loaded.ok, [str(p) for p in loaded.problems]
    paths = WafPaths(tmp_path / "state")
    text = render(loaded.config, WafEnv(paths.root))
    golden = text.replace(str(paths.run), str(WafPaths(Path("/var/lib/pacslb")).run)).replace(str(paths.root), "/var/lib/pacslb")
    assert golden == (case / "apache.conf").read_text(), "the checked rendering differs from the golden beyond its paths"
    try:
        process.prepare(paths)
        paths.config.write_text(text)
        result = process.check(paths.config)
        assert result.ok, result.output
    finally:
        shutil.rmtree(paths.run, ignore_errors=True)


def test_a_rule_apache_refuses_is_reported_in_its_words(tmp_path: Path) -> None:
    conf = tmp_path / "apache.conf"
    modules = "/usr/lib/apache2/modules"
    conf.write_text(
        f"LoadModule mpm_event_module {modules}/mod_mpm_event.so\nLoadModule security2_module {modules}/mod_security2.so\n"
        'SecRule ARGS "@nosuchop x" "id:1"\n'
    )
    result = process.check(conf)
    assert not result.ok and "nosuchop" in result.output
