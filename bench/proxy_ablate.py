#!/usr/bin/env python3
"""Ablation of the Layer 7 proxy bench: the rendered file with one thing removed, interleaved with the others.

    .venv/bin/python bench/proxy_ablate.py --cases rendered,minimal,no-retries,no-logs,no-forwardfor \\
        --loads http-small-keepalive,https-small-keepalive --duration 4 --rounds 4 --readme /tmp/ablation.md

Every option of bench/proxy.py applies; --readme is required (bench/README.md keeps the full run's tables). Each ablation case is
`rendered` (or another case) with regular-expression edits of its file; an edit that matches nothing stops
the run, so a case never measures the file unchanged. bench/README.md quotes a run of it.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("pacslb_bench_proxy", HERE / "proxy.py")
proxy = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = proxy  # dataclasses look their module up by name
_spec.loader.exec_module(proxy)

# case -> (the case it edits, [(pattern, replacement), ...])
ABLATIONS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "no-retries": ("rendered", [(r"\n    retry-on [^\n]*", ""), (r"\n    http-request disable-l7-retry[^\n]*", "")]),
    "conn-failure-retries": ("rendered", [(r"retry-on conn-failure empty-response junk-response", "retry-on conn-failure")]),
    "no-logs": (
        "rendered",
        [(r"\n    option httplog", ""), (r"\n    option dontlog-normal", ""), (r"\n    log stdout[^\n]*", "")],
    ),
    "no-forwardfor": ("rendered", [(r"\n    option forwardfor", "")]),
    "no-idle-close": ("rendered", [(r"\n    option idle-close-on-response", "")]),
    "no-checks": ("rendered", [(r" check weight 100", " weight 100"), (r" check-ssl", "")]),
    "minimal-always": ("minimal", [(r"(\nbackend \w+)", r"\1\n    http-reuse always")]),
}


def edited(text: str, edits: list[tuple[str, str]], case: str) -> str:
    """The file with every edit made; ValueError if one matches nothing."""
    for pattern, replacement in edits:
        text, n = re.subn(pattern, replacement, text)
        if not n:
            raise ValueError(f"ablation {case}: {pattern!r} matches nothing in the file")
    return text


_case_config = proxy.case_config


def case_config(case, vips, servers, files, prefix, reuse):
    """proxy.case_config, with the ablation cases added."""
    if case in ABLATIONS:
        base, edits = ABLATIONS[case]
        return edited(_case_config(base, vips, servers, files, prefix, reuse), edits, case)
    return _case_config(case, vips, servers, files, prefix, reuse)


proxy.case_config = case_config
proxy.CASES.update({name: f"{base} with: {', '.join(p for p, _ in edits)} edited" for name, (base, edits) in ABLATIONS.items()})

if __name__ == "__main__":
    if "--readme" not in sys.argv and "--report" not in sys.argv:
        sys.exit("give --readme FILE: an ablation never rewrites bench/README.md's results section")
    sys.exit(proxy.main(sys.argv[1:]))
