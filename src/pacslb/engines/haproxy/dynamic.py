"""Dynamic servers: the runtime API's `add server` line for a real server, the same as its line in haproxy.cfg.

HAProxy 2.6 adds a server to a running backend without a reload (`add server B/S ADDR [options]`),
with limits this module knows (management guide, "add server"):

  - the options are those of the server line, but `default-server` is not applied: its options
    (check interval, rise, fall, check port) are written out;
  - the `cookie` keyword is refused (services with cookie persistence need a reload);
  - a DNS name is never resolved (init-addr none): a real server given by name needs a reload;
  - `ca-file` loads only a file HAProxy has already loaded at startup;
  - the CLI splits its words on spaces and reads no quotes: a value that needs quoting in the file
    (an SNI with a space, say) cannot be sent.

`add_server_words` is pure: it takes the backend view the renderer builds, so the server's options
are the very ones the file gets. Layer 4 services are nftables' and never come here.
"""

from __future__ import annotations

import ipaddress
import re

from .render import Backend, LogFormat, Server, Text, Word, render_arg

# Options the dynamic server must not get: it starts in maintenance anyway (the controller then sets
# the model's state), and `cookie` is refused by HAProxy.
_SKIPPED = {"disabled"}

# What the CLI passes through unchanged: no spaces, quotes, backslashes or comment signs.
_PLAIN = re.compile(r"^[A-Za-z0-9_.:/@,()\[\]+=*^|~!&<>%-]+$")


class NotDynamic(Exception):
    """This server cannot be added at runtime; the message says why (a reload can add it)."""


def add_server_words(backend: Backend, server_name: str) -> tuple[str, tuple[str, ...]]:
    """(address, options) for `add server <backend>/<server>`; raises NotDynamic when HAProxy would refuse it."""
    server: Server | None = next((s for s in backend.servers if s.name == server_name), None)
    if server is None:
        raise NotDynamic(f"{backend.name} has no real server {server_name}")
    try:
        ipaddress.ip_address(_host(server.address))
    except ValueError:
        raise NotDynamic(
            f"its address {server.address} is a DNS name, which HAProxy does not resolve for servers added at runtime"
        ) from None
    words: list[str] = []
    for word in server.options:
        if word == "cookie":
            raise NotDynamic("HAProxy refuses the cookie keyword (cookie persistence) for servers added at runtime")
        if word not in _SKIPPED:
            words.append(_plain(word))
    words += [_plain(w) for w in backend.default_server]  # not inherited by dynamic servers
    return server.address, tuple(words)


def _host(address: str) -> str:
    """The host part of the renderer's `ADDR[:PORT]` (IPv6 in brackets)."""
    if address.startswith("["):
        return address[1 : address.index("]")]
    return address.split(":", 1)[0]


def _plain(word: object) -> str:
    """One word as the CLI reads it: written as is, since it reads no quotes; a value that needs them is refused."""
    if isinstance(word, LogFormat):
        raise NotDynamic(f"its option {word} is a log-format string")
    text = str(word) if isinstance(word, (Text, Word)) else render_arg(word)
    if not _PLAIN.match(text):
        raise NotDynamic(f"its option {render_arg(word)} needs quoting, which HAProxy's command line does not read")
    return text
