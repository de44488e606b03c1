"""docs/true-pacs.md maps every row of the guide's VIP table to the configuration, and its links resolve."""

from __future__ import annotations

import re
from pathlib import Path

from pacslb.templates.true_pacs import SERVICES

DOCS = Path(__file__).resolve().parents[3] / "docs"
PAGE = DOCS / "true-pacs.md"


def _table_rows() -> list[str]:
    text = PAGE.read_text()
    section = text.split("## Where each row of the guide is in the configuration", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ")]


def test_every_service_of_the_template_has_its_row():
    rows = _table_rows()
    for spec in SERVICES:
        ref = spec.ref.replace(" - ", " – ")  # the guide's dash
        mine = [r for r in rows if f"| {ref} {spec.name}" in r]
        assert len(mine) == 1, f"docs/true-pacs.md has no row for {spec.ref} {spec.name}"
        assert f"virtual_services[{spec.name}]" in mine[0]
        if spec.parent is not None:
            assert f"rule `{spec.word.lower()}` " in mine[0] and f"of {spec.parent}" in mine[0], mine[0]


def test_the_pages_links_and_picture_exist():
    text = PAGE.read_text()
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if "://" not in target:
            assert (DOCS / target).exists(), f"docs/true-pacs.md links to {target}, which does not exist"
    assert "img/true-pacs-topology.svg" in text
