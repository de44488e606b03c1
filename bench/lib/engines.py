"""pacslb's model and renderers, and HAProxy configuration files, as the benchmarks use them."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any


def validated(data: dict[str, Any]):
    """The pacslb configuration of a benchmark, validated by the model; an invalid one stops the run."""
    from pacslb.model import validate_data

    loaded = validate_data(data)
    if not loaded.ok:
        raise RuntimeError("bench configuration is invalid: " + "; ".join(str(p) for p in loaded.problems))
    return loaded.config


def render_haproxy(data: dict[str, Any], state_dir: Path, threads: int) -> str:
    """pacslb's HAProxy renderer, as the appliance calls it, with `threads` CPUs (nbthread)."""
    from pacslb.engines.haproxy.render import HAProxyEnv, render

    config = validated(data)
    (state_dir / "haproxy").mkdir(parents=True, exist_ok=True)
    return render(config, HAProxyEnv(state_dir=state_dir, base_dir=state_dir, cpu_count=threads))


def haproxy_nbthread(cfg: str) -> int | None:
    """`nbthread` of an HAProxy configuration (None: not set)."""
    m = re.search(r"^\s*nbthread\s+(\d+)\s*$", cfg, re.M)
    return int(m.group(1)) if m else None


def haproxy_global_maxconn(cfg: str) -> int | None:
    """`maxconn` of the global section (None: HAProxy derives it from the open-files limit)."""
    m = re.search(r"^global\b(.*?)(?=^\S)", cfg + "\nend", re.M | re.S)
    g = re.search(r"^\s+maxconn\s+(\d+)\s*$", m.group(1), re.M) if m else None
    return int(g.group(1)) if g else None


def haproxy_check(cfg_path: Path) -> None:
    """`haproxy -c` on a configuration file; a refused one stops the run."""
    r = subprocess.run(["haproxy", "-c", "-q", "-f", str(cfg_path)], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"haproxy -c -f {cfg_path} failed:\n{r.stdout}{r.stderr}")
