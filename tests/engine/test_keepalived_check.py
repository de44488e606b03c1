"""Every golden keepalived.conf passes the real `keepalived -t`, in a namespace that has its interface."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pacslb.engines.keepalived import process
from pacslb.engines.keepalived.render import KeepalivedPaths, render, render_scripts
from pacslb.model import load_file
from support.netns import Lab

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden" / "keepalived"
CASES = sorted(p for p in GOLDEN_DIR.iterdir() if p.is_dir() and re.match(r"^\d{3}_", p.name))


@pytest.mark.engine
@pytest.mark.root
@pytest.mark.netns
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_passes_keepalived_check(case: Path, tmp_path: Path) -> None:
    loaded = load_file(case / "config.yaml")
    assert loaded.ok
    golden = (case / "keepalived.conf").read_text()
    assert render(loaded.config, KeepalivedPaths(Path("/var/lib/pacslb"))) == golden
    paths = KeepalivedPaths(tmp_path)
    process.write_scripts(render_scripts(paths))
    paths.config.write_text(golden.replace("/var/lib/pacslb", str(tmp_path)))
    with Lab() as lab:
        ns = lab.ns("ka")
        lab.sh(ns, f"ip link add {loaded.config.ha.interface} type veth peer name peer0")
        ok = lab.run(ns, [process.DEFAULT_BINARY, "-t", "-f", str(paths.config)], check=False)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        # and the check really checks: an interface that does not exist is refused
        broken = paths.config.with_name("broken.conf")
        broken.write_text(paths.config.read_text().replace(f"interface {loaded.config.ha.interface}", "interface nosuch0"))
        bad = lab.run(ns, [process.DEFAULT_BINARY, "-t", "-f", str(broken)], check=False)
        assert bad.returncode != 0
