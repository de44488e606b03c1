"""HAProxyEnv, the renderer's input beside the model.

A module of its own, so that the frontend and backend transforms can take it without importing `render`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

LUA_DIR = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class HAProxyEnv:
    """What the rendering needs beyond the model; the caller finds it, the renderer never looks."""

    state_dir: Path  # sockets and state files: StatePaths(state_dir)
    base_dir: Path  # relative certificate and CA paths are read from here
    cpu_count: int = 1  # the caller reads os.cpu_count()
    # a frontend that serves HAProxy's Prometheus exporter on <state>/haproxy/prom.sock (the management
    # API proxies /metrics to it); the controller turns it on, golden files leave it off
    prometheus: bool = False
    # HAProxy's workers drop root (the master stays root: it re-reads the file on reload and owns the sockets):
    # `user` and `group` they run as, `chroot` locks them in the empty StatePaths.haproxy_chroot. The controller
    # turns these on when it runs as root (engine.py `haproxy_env`); off, the workers keep the master's identity.
    user: str | None = None
    group: str | None = None
    chroot: bool = False
    # where the Lua scripts HAProxy loads are (the package's templates folder; golden files name a fixed one)
    lua_dir: Path = LUA_DIR
