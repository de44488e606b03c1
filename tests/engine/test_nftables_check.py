"""Every golden ruleset.nft passes the real `nft -c -f`, applies, and its removal leaves no pacslb table.

Each case runs in a fresh network namespace (the host's ruleset is never touched) that holds veth
devices named as in the case's env.yaml, since DR chains hook on and forward to named devices.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from pacslb.engines.nftables import process
from pacslb.engines.nftables.render import Layer4Env, removal, render
from pacslb.model import load_file
from support.netns import Lab

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden" / "nftables"
CASES = sorted(p for p in GOLDEN_DIR.iterdir() if p.is_dir() and re.match(r"^\d{3}_", p.name))


def _nft(lab: Lab, ns: str, *args: str, text: str | None = None):
    return lab.run(ns, [process.NFT, *args], check=False, input=text)


@pytest.mark.engine
@pytest.mark.root
@pytest.mark.netns
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_passes_nft_check_and_applies(case: Path) -> None:
    env_file = case / "env.yaml"
    env = Layer4Env.from_dict(yaml.safe_load(env_file.read_text()) if env_file.exists() else {})
    loaded = load_file(case / "config.yaml")
    assert loaded.ok
    text = (case / "ruleset.nft").read_text()
    assert render(loaded.config, env) == text
    with Lab() as lab:
        ns = lab.ns("nft")
        for i, device in enumerate(env.devices()):
            lab.sh(ns, f"ip link add {device} type veth peer name peer{i}")
            lab.sh(ns, f"ip link set {device} up")
        checked = _nft(lab, ns, "-c", "-f", "-", text=text)
        assert checked.returncode == 0, checked.stderr
        assert _nft(lab, ns, "list", "tables").stdout == "", "nft -c changed the ruleset"
        applied = _nft(lab, ns, "-f", "-", text=text)
        assert applied.returncode == 0, applied.stderr
        listed = _nft(lab, ns, "list", "tables").stdout
        if "table inet pacslb {" in text:
            assert "table inet pacslb" in listed
        if "table netdev pacslb {" in text:
            assert "table netdev pacslb" in listed
        # applying again replaces the tables in one transaction (the restart / re-apply path)
        assert _nft(lab, ns, "-f", "-", text=text).returncode == 0
        # a table of someone else survives pacslb's removal
        assert _nft(lab, ns, "add", "table", "inet", "other").returncode == 0
        removed = _nft(lab, ns, "-f", "-", text=removal())
        assert removed.returncode == 0, removed.stderr
        assert _nft(lab, ns, "list", "tables").stdout.split() == ["table", "inet", "other"]
