"""haproxy.cfg after a change of real servers' states and weights only, without rendering the whole file again.

A drain, halt, online or weight changes one `server` line of one backend (drain is `weight 0`, halt
`disabled`, backend.py `_server`). Rendering 1,000 services takes hundreds of milliseconds of Python;
rewriting the lines that changed takes microseconds. `patch_servers` is pure and cautious: it returns
None, and the caller renders the whole file, unless

  - the two models have the same services, in the same order, and the services that differ are carried by
    HAProxy and differ in their real servers' `state` and `weight` only (every other field the same);
  - every changed server's line, as the renderer writes it for the old model, is found exactly once in its
    backend's section of the old file.

The unit tests compare its result with a whole render, on the True PACS template among others.
"""

from __future__ import annotations

from ...model.config import Config, RealServer, VirtualService
from .backend import _server
from .quoting import render_line
from .render import HAProxyEnv

_PATCHED_FIELDS = frozenset({"state", "weight"})


def server_line(rs: RealServer, vs: VirtualService, config: Config, env: HAProxyEnv) -> str:
    """The line of one real server in its backend, as the template writes it (without the newline)."""
    server = _server(rs, vs, env, config.settings.health.agent_port)
    return "    server " + render_line((server.name, server.address) + server.options)


def _same_but_servers(a: VirtualService, b: VirtualService) -> bool:
    """The two services differ in their real servers' state and weight at most (same names, same order)."""
    for name in VirtualService.model_fields:
        if name != "real_servers" and getattr(a, name) != getattr(b, name):
            return False
    if [rs.name for rs in a.real_servers] != [rs.name for rs in b.real_servers]:
        return False
    for ra, rb in zip(a.real_servers, b.real_servers, strict=True):
        if ra is rb:
            continue
        for name in RealServer.model_fields:
            if name not in _PATCHED_FIELDS and getattr(ra, name) != getattr(rb, name):
                return False
    return True


def _section(text: str, name: str) -> tuple[int, int] | None:
    """Start and end of `backend <name>`'s section in the file (up to the blank line after it), or None."""
    head = f"\nbackend {name}\n"
    start = text.find(head)
    if start < 0 or text.find(head, start + 1) >= 0:
        return None
    end = text.find("\n\n", start + len(head))
    return start, (len(text) if end < 0 else end + 1)


def patch_servers(text: str, old: Config, new: Config, env: HAProxyEnv) -> str | None:
    """The file for `new`, from `text` (the file rendered for `old`) with the changed servers' lines rewritten;
    None when the change is more than real servers' states and weights, or the lines are not where expected."""
    if (
        old.version != new.version
        or old.settings != new.settings
        or (old.ha, old.gslb, old.alerts) != (new.ha, new.gslb, new.alerts)
    ):
        return None
    if len(old.virtual_services) != len(new.virtual_services):
        return None
    for a, b in zip(old.virtual_services, new.virtual_services, strict=True):
        if a is b:
            continue
        if a.name != b.name or a.mode.is_layer4 or b.mode.is_layer4 or not _same_but_servers(a, b):
            return None
        changed = [(ra, rb) for ra, rb in zip(a.real_servers, b.real_servers, strict=True) if ra is not rb and ra != rb]
        if not changed:
            continue
        where = _section(text, a.name)
        if where is None:
            return None
        start, end = where
        section = text[start:end]
        for ra, rb in changed:
            before, after = server_line(ra, a, old, env) + "\n", server_line(rb, b, new, env) + "\n"
            if section.count("\n" + before) != 1:
                return None
            section = section.replace("\n" + before, "\n" + after)
        text = text[:start] + section + text[end:]
    return text
