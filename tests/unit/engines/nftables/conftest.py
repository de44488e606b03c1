"""Golden cases of the nftables renderer: one directory per feature under tests/golden/nftables/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

GOLDEN_DIR = Path(__file__).resolve().parents[3] / "golden" / "nftables"


def golden_cases() -> list[Path]:
    return sorted(p for p in GOLDEN_DIR.iterdir() if p.is_dir() and re.match(r"^\d{3}_", p.name))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "nft_golden_case" in metafunc.fixturenames:
        cases = golden_cases()
        metafunc.parametrize("nft_golden_case", cases, ids=[c.name for c in cases])
