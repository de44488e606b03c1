"""The True PACS template's HTTP checks as HAProxy runs them: HTTP/1.1 with a Host, and VIP 3's traffic port."""

from pathlib import Path

from pacslb.engines.haproxy.render import HAProxyEnv, render
from pacslb.model import load_text
from pacslb.templates.true_pacs import SERVICES, render_true_pacs

ENV = HAProxyEnv(state_dir=Path("/var/lib/pacslb"), base_dir=Path("/etc/pacslb"), cpu_count=2)


def backends() -> dict[str, str]:
    text = render(load_text(render_true_pacs()).config, ENV)
    return {block.split("\n", 1)[0]: block for block in text.split("\nbackend ")[1:]}


def test_every_http_check_is_http11_with_a_host_and_vip3_checks_port_80_too():
    found = backends()
    for spec in SERVICES:
        if spec.mode != "backend-only":
            continue
        block = found[spec.name]
        assert 'ver HTTP/1.1 hdr Host "' in block and "HTTP/1.0" not in block, block
        # VIP 3 carries traffic on 80 but keeps the guide's HTTPS check on 443: port 80 is connected as well
        assert ("http-check connect port 80" in block) is (spec.parent == "WFC_http"), block
