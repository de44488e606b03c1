"""Both files `pacslb init --ha` writes for a pair pass the real `keepalived -t` and `haproxy -c`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pacslb.cli import app
from pacslb.engines.haproxy.render import HAProxyEnv, render
from pacslb.engines.keepalived import process
from pacslb.engines.keepalived.render import KeepalivedPaths, render_scripts
from pacslb.engines.keepalived.render import render as render_keepalived
from pacslb.ha.peer_link import ensure_node_certificate
from pacslb.model import load_file
from pacslb.paths import StatePaths
from support.netns import Lab

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
NODES = {"primary": ("10.0.0.2", "10.0.0.3"), "secondary": ("10.0.0.3", "10.0.0.2")}


def _write_pair(tmp_path: Path) -> dict[str, Path]:
    configs: dict[str, Path] = {}
    for role, (address, peer) in NODES.items():
        config = tmp_path / role / "pacslb.yaml"
        result = CliRunner().invoke(app, ["init", "-t", "true-pacs", "-o", str(config), "--vip-address", "10.0.0.10",
                                          "--ha", role, "--node-address", address, "--peer", peer, "--interface", "lb0",
                                          "--interface-network", "10.0.0.0/24", "--virtual-router-id", "77"])  # fmt: skip
        assert result.exit_code == 0, result.output
        configs[role] = config
    for role, (address, _peer) in NODES.items():
        cert = ensure_node_certificate(tmp_path / role / "state", "pacslb HA node", [address])
        other = "secondary" if role == "primary" else "primary"
        shutil.copy(cert, configs[other].parent / "ha-peer.pem")
    return configs


@pytest.mark.engine
@pytest.mark.root
@pytest.mark.netns
def test_both_nodes_pass_keepalived_and_haproxy_checks(tmp_path: Path) -> None:
    configs = _write_pair(tmp_path)
    priorities = {}
    with Lab() as lab:
        ns = lab.ns("initha")
        lab.sh(ns, "ip link add lb0 type veth peer name peer0")
        for role, config in configs.items():
            loaded = load_file(config)
            assert loaded.ok, [str(p) for p in loaded.problems]
            paths = KeepalivedPaths(tmp_path / role / "state")
            process.write_scripts(render_scripts(paths))
            text = render_keepalived(loaded.config, paths)
            assert "virtual_router_id 77" in text and "10.0.0.10" in text
            priorities[role] = next(int(line.split()[1]) for line in text.splitlines() if line.strip().startswith("priority"))
            paths.config.write_text(text)
            checked = lab.run(ns, [process.DEFAULT_BINARY, "-t", "-f", str(paths.config)], check=False)
            assert checked.returncode == 0, checked.stdout + checked.stderr

            state = StatePaths(tmp_path / role / "state")
            state.haproxy_dir.mkdir(parents=True, exist_ok=True)
            state.haproxy_server_state.write_text("1\n")
            cfg = render(loaded.config, HAProxyEnv(state_dir=state.root, base_dir=config.parent, cpu_count=2))
            assert "peers " in cfg and "10.0.0.3" in cfg and "10.0.0.2" in cfg  # stick tables shared with the peer
            cfg_file = tmp_path / role / "haproxy.cfg"
            cfg_file.write_text(cfg)
            result = subprocess.run([HAPROXY, "-c", "-f", str(cfg_file)], capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, result.stdout + result.stderr
    assert priorities["primary"] > priorities["secondary"]
