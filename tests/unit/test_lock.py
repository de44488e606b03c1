"""requirements.lock pins every dependency pyproject.toml names, with hashes (`make lock` writes it again)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def test_every_dependency_is_pinned_with_hashes():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]}
    lock = (REPO / "requirements.lock").read_text()
    pinned = {m[1].lower(): m[2] for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", lock, re.M)}
    assert wanted <= set(pinned), f"not in requirements.lock (run make lock): {sorted(wanted - set(pinned))}"
    blocks = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", lock)
    unhashed = [b.split("==")[0] for b in blocks[1:] if "--hash=sha256:" not in b]
    assert not unhashed, f"pinned without a hash: {unhashed}"
