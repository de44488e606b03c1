"""HAProxyEnv, the renderer's input beside the model.

A module of its own, so that the frontend and backend transforms can take it without importing `render`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class HAProxyEnv:
    """What the rendering needs beyond the model; the caller finds it, the renderer never looks."""

    state_dir: Path  # sockets and state files: StatePaths(state_dir)
    base_dir: Path  # relative certificate and CA paths are read from here
    cpu_count: int = 1  # the caller reads os.cpu_count()
    # a frontend that serves HAProxy's Prometheus exporter on <state>/haproxy/prom.sock (the management
    # API proxies /metrics to it); the controller turns it on, golden files leave it off
    prometheus: bool = False
