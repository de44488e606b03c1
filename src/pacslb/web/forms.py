"""The WebUI's forms: which fields each object has, and the pure conversions model data <-> form values.

A form edits one object of the configuration: a virtual service's own settings, its health check, one
real server or one rule. `values_of` turns the object's data (a JSON dump of the model) into the
strings a form shows; `data_from_form` turns the strings a browser sent back into model data, which
the model then validates (so "abc" for an interval is the model's own problem, shown beside the
field: see fields.py). Nothing here checks values itself: one set of rules, in the model.

Field names are the model's field names, dotted for nested objects (`match.path_begins`,
`persistence.type`), so a problem's path names its field.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..model.config import Mode, RealServerState, Scheduler
from ..model.types import SECRET_PLACEHOLDER

HEALTH_CHECK_TYPES = ("none", "connect", "http", "https", "dicom-echo", "hl7", "amqp", "external")
TIMED = HEALTH_CHECK_TYPES[1:]  # every type but "none" has interval, timeout, rise, fall, port
HTTP = ("http", "https")
PERSISTENCE_TYPES = ("none", "source-ip", "ssl-session-id", "x-forwarded-for", "http-cookie", "app-cookie")
RULE_ACTIONS = ("use_service", "redirect", "deny")


@dataclass(frozen=True)
class Field:
    name: str  # the model's field, dotted when nested
    label: str
    kind: str = "text"  # text | number | select | checkbox | textarea | list (comma-separated) | password (a secret)
    options: tuple[str, ...] = ()
    help: str = ""
    types: tuple[str, ...] = ()  # the variants (health-check, persistence types) it belongs to; () = all
    placeholder: str = ""


HEALTH_CHECK_FIELDS: tuple[Field, ...] = (
    Field("type", "Type", "select", HEALTH_CHECK_TYPES, "'none' is 'no checks, always on'"),
    Field("interval", "Interval", help="time between checks, e.g. 5s or 500ms", types=TIMED, placeholder="5s"),
    Field("timeout", "Timeout", help="time a check may take; not longer than the interval", types=TIMED, placeholder="4s"),
    Field("rise", "Rise", "number", help="passes in a row that bring a server up (1-100)", types=TIMED, placeholder="2"),
    Field("fall", "Fall", "number", help="failures in a row that take a server down (1-100)", types=TIMED, placeholder="3"),
    Field("port", "Port", "number", help="check this port instead of the real server's", types=TIMED),
    Field("method", "Method", "select", ("GET", "HEAD", "OPTIONS", "POST"), types=HTTP),
    Field("path", "Path", help="request path, e.g. /health", types=HTTP, placeholder="/"),
    Field("host", "Host header", types=HTTP),
    Field("expect_status", "Expected status", "list", help="any of these passes, e.g. 200, 204", types=HTTP, placeholder="200"),
    Field("expect_body", "Expected body text", types=HTTP),
    Field("calling_ae", "Calling AE title", types=("dicom-echo",), placeholder="PACSLB"),
    Field("called_ae", "Called AE title", types=("dicom-echo",), placeholder="ANY-SCP"),
    Field(
        "message", "HL7 message", "textarea", help="segments on separate lines; empty: a network-management query", types=("hl7",)
    ),
    Field("sending_application", "Sending application (MSH-3)", types=("hl7",), placeholder="PACSLB"),
    Field("receiving_application", "Receiving application (MSH-5)", types=("hl7",)),
    Field("virtual_host", "Virtual host", types=("amqp",), placeholder="/"),
    Field("username", "User name", help="log in as this user; empty: stop at Connection.Start", types=("amqp",)),
    Field(
        "password",
        "Password",
        "password",
        help=f"a secret: shown as {SECRET_PLACEHOLDER} when one is stored; leave it so to keep it, or type a new one",
        types=("amqp",),
    ),
    Field("script", "Script", help="absolute path; run as SCRIPT VIP VIP_PORT RS RS_PORT", types=("external",)),
)

VIRTUAL_SERVICE_FIELDS: tuple[Field, ...] = (
    Field("name", "Name", help="letters, digits, _ . -"),
    Field("description", "Description"),
    Field("mode", "Mode", "select", tuple(m.value for m in Mode)),
    Field(
        "listen",
        "Listen on",
        "list",
        help="address:port, comma-separated; [v6]:port; none for backend-only",
        placeholder="10.0.0.10:8443",
    ),
    Field("scheduler", "Scheduler", "select", tuple(s.value for s in Scheduler)),
    Field("persistence.type", "Persistence", "select", PERSISTENCE_TYPES),
    Field(
        "persistence.timeout",
        "Persistence timeout",
        help="idle time after which an entry expires, e.g. 30m",
        types=("source-ip", "ssl-session-id", "x-forwarded-for", "app-cookie"),
    ),
    Field("persistence.cookie_name", "Cookie name", types=("http-cookie", "app-cookie")),
    Field("default_service", "Default service", help="backend-only service for requests no rule takes"),
    Field("fallback", "Fallback server", help="address:port that serves when every real server is down"),
    Field(
        "tls.certificates",
        "TLS certificates",
        "list",
        help="PEM files (certificate, key, chain), comma-separated; empty: no TLS termination",
    ),
    Field("max_connections", "Max connections", "number", help="concurrent client connections; empty: no limit"),
    Field("proxy_protocol", "PROXY protocol", "select", ("none", "v1", "v2")),
)

REAL_SERVER_FIELDS: tuple[Field, ...] = (
    Field("name", "Name"),
    Field("address", "Address", help="IP address or DNS name"),
    Field("port", "Port", "number", help="empty: the port the client connected to"),
    Field("weight", "Weight", "number", help="share of new connections, 0 to 256", placeholder="100"),
    Field("max_connections", "Max connections", "number", help="0: no limit", placeholder="0"),
    Field("state", "State", "select", tuple(s.value for s in RealServerState)),
    Field("backup", "Backup", "checkbox", help="used only when every other real server is down"),
    Field("encrypted", "Encrypted", "checkbox", help="re-encrypt traffic to it with TLS"),
)

RULE_FIELDS: tuple[Field, ...] = (
    Field("name", "Name"),
    Field("match.path_begins", "Path begins with", "list", help="comma-separated, e.g. /inference, /ai"),
    Field("match.path_ends", "Path ends with", "list"),
    Field("match.host", "Host header", "list"),
    Field("match.sni", "TLS server name (SNI)", "list"),
    Field("match.source", "Client networks", "list", help="e.g. 10.1.0.0/16"),
    Field("action", "Action", "select", RULE_ACTIONS),
    Field("use_service", "Use service", help="a backend-only service", types=("use_service",)),
    Field("redirect.location", "Redirect to", types=("redirect",)),
    Field("redirect.code", "Redirect status", "select", ("302", "301", "303", "307", "308"), types=("redirect",)),
    Field(
        "deny.status",
        "Deny with status",
        "select",
        ("403", "400", "401", "404", "405", "429", "500", "502", "503"),
        types=("deny",),
    ),
)


# --- model data -> form values -------------------------------------------------------------------


def _get(data: Mapping[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def format_address(address: Mapping[str, Any]) -> str:
    """{address, port} as 'address:port' ('[v6]:port' for IPv6)."""
    host = str(address.get("address", ""))
    host = f"[{host}]" if ":" in host else host
    port = address.get("port")
    return f"{host}:{port}" if port not in (None, "") else host


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "on" if value else ""
    if isinstance(value, list):
        return ", ".join(format_address(v) if isinstance(v, Mapping) else str(v) for v in value)
    if isinstance(value, Mapping):
        return format_address(value)
    return str(value)


def _textarea(value: Any) -> str:
    """A list in a text area is one item per line (an HL7 message: one segment a line), as the model reads it back."""
    return "\n".join(map(str, value)) if isinstance(value, list) else _text(value)


def values_of(data: Mapping[str, Any], fields: tuple[Field, ...]) -> dict[str, str]:
    """The strings a form shows for an object's data (a model dump in JSON mode)."""
    values = {f.name: _textarea(_get(data, f.name)) if f.kind == "textarea" else _text(_get(data, f.name))
              for f in fields}  # fmt: skip
    if fields is RULE_FIELDS:
        values["action"] = next((a for a in RULE_ACTIONS if data.get(a) is not None), "use_service")
    return values


# --- form values -> model data -------------------------------------------------------------------


def split_list(text: str) -> list[str]:
    """'a, b c' -> ['a', 'b', 'c']: commas or spaces separate items."""
    return [item for item in re.split(r"[,\s]+", text.strip()) if item]


def parse_address(text: str) -> dict[str, str]:
    """'10.0.0.1:8443' or '[::1]:8443' -> {address, port}; the model judges both parts (a missing port is
    its 'required field' problem, shown beside the field)."""
    text = text.strip()
    match = re.fullmatch(r"\[([^\]]*)\](?::(.*))?", text)
    if match:
        host, port = match[1], match[2]
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, None
    return {"address": host, "port": port} if port not in (None, "") else {"address": host}


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[leaf] = value


def _drop(data: dict[str, Any], dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    node: Any = data
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return
    if isinstance(node, dict):
        node.pop(leaf, None)


def _apply_fields(form: Mapping[str, str], fields: tuple[Field, ...], data: dict[str, Any],
                  variant: str | None = None, convert: Mapping[str, Callable[[str], Any]] | None = None) -> None:  # fmt: skip
    """Set each field from the form: empty text leaves the model's default (the key is dropped), lists are
    split, checkboxes are present or not. Fields of another variant than `variant` are dropped."""
    convert = convert or {}
    for f in fields:
        if f.name in convert:
            continue
        if f.types and variant is not None and variant not in f.types:
            _drop(data, f.name)
            continue
        raw = form.get(f.name, "")
        if f.kind == "checkbox":
            _set(data, f.name, f.name in form and raw not in ("", "off", "false"))
        elif f.kind == "list":
            _set(data, f.name, split_list(raw))
        elif raw.strip() == "":
            _drop(data, f.name)
        elif f.kind == "select" and f.options and all(o.isdigit() for o in f.options) and raw.strip().isdigit():
            _set(data, f.name, int(raw.strip()))  # the model's literals are numbers (301, 403)
        else:
            _set(data, f.name, raw.strip() if f.kind != "textarea" else raw.replace("\r\n", "\n"))
    for name, function in convert.items():
        _set(data, name, function(form.get(name, "")))


def health_check_data(form: Mapping[str, str]) -> dict[str, Any]:
    """A health check from its form: only the fields of the chosen type (the others would be unknown fields)."""
    kind = form.get("type", "").strip() or "connect"
    data: dict[str, Any] = {"type": kind}
    fields = tuple(f for f in HEALTH_CHECK_FIELDS if f.name != "type")
    _apply_fields(form, fields, data, variant=kind)
    if "expect_status" in data and not data["expect_status"]:
        del data["expect_status"]  # empty: the default (200)
    return data


def virtual_service_data(form: Mapping[str, str], base: Mapping[str, Any]) -> dict[str, Any]:
    """A virtual service from its form, on top of `base` (its current data: real servers, rules, health check
    and the settings the form does not show stay as they are)."""
    data = copy.deepcopy(dict(base))
    persistence_type = form.get("persistence.type", "").strip() or "none"
    old_persistence = data.get("persistence") if isinstance(data.get("persistence"), dict) else {}
    # keep settings the form does not show (table_size, max_idle) when the type stays the same
    data["persistence"] = dict(old_persistence) if old_persistence.get("type") == persistence_type else {}
    data["persistence"]["type"] = persistence_type
    fields = tuple(f for f in VIRTUAL_SERVICE_FIELDS if f.name not in ("persistence.type",))
    plain = tuple(f for f in fields if not f.name.startswith(("persistence.", "tls.")) and f.name not in ("listen", "fallback"))
    _apply_fields(form, plain, data)
    _apply_fields(form, tuple(f for f in fields if f.name.startswith("persistence.")), data, variant=persistence_type)
    data["listen"] = [parse_address(item) for item in split_list(form.get("listen", ""))]
    fallback = form.get("fallback", "").strip()
    if fallback:
        data["fallback"] = {**(data.get("fallback") or {}), **parse_address(fallback)}
    else:
        data.pop("fallback", None)
    certificates = split_list(form.get("tls.certificates", ""))
    if certificates:
        data["tls"] = {**(data.get("tls") or {}), "certificates": certificates}
    else:
        data.pop("tls", None)
    return data


def real_server_data(form: Mapping[str, str], base: Mapping[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(dict(base))
    _apply_fields(form, REAL_SERVER_FIELDS, data)
    return data


def rule_data(form: Mapping[str, str], base: Mapping[str, Any]) -> dict[str, Any]:
    """A rule from its form: the conditions shown, the header conditions of `base` kept, and one action."""
    data = copy.deepcopy(dict(base))
    action = form.get("action", "").strip() or "use_service"
    for name in RULE_ACTIONS:
        data.pop(name, None)
    fields = tuple(f for f in RULE_FIELDS if f.name != "action")
    _apply_fields(form, fields, data, variant=action)
    match = data.get("match") or {}
    data["match"] = {k: v for k, v in match.items() if v}  # empty conditions are no conditions
    return data
