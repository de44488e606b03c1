"""The True PACS template shares server connections between clients on its backend-only services (connection_reuse)."""

from __future__ import annotations

from pathlib import Path

from pacslb.engines.haproxy.render import HAProxyEnv, render
from pacslb.model import Mode, load_text
from pacslb.templates.true_pacs import render_true_pacs


def test_backend_only_services_reuse_always_and_the_rest_keep_the_default():
    text = render_true_pacs(None)
    config = load_text(text).config
    backend_only = [vs for vs in config.virtual_services if vs.mode is Mode.BACKEND_ONLY]
    assert backend_only and all(vs.connection_reuse == "always" for vs in backend_only)
    assert all(vs.connection_reuse == "safe" for vs in config.virtual_services if vs.mode is not Mode.BACKEND_ONLY)
    assert "CONNECTION REUSE" in text  # the header says why, and the risk


def test_the_rendered_backends_say_http_reuse_always():
    config = load_text(render_true_pacs(None)).config
    cfg = render(config, HAProxyEnv(state_dir=Path("/var/lib/pacslb"), base_dir=Path("/etc/pacslb"), cpu_count=2))
    assert cfg.count("http-reuse always") == sum(vs.mode is Mode.BACKEND_ONLY for vs in config.virtual_services)
