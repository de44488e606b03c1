"""Configuration builders for tests: the YAML text of `pacslb.yaml` (flow style, one real server a line).

  real_server(rs, **fields) -> str          "{name: rs1, address: 127.X.Y.2, port: 8000, backup: true}"
                                            from anything with .name, .host, .port (TinyHTTPServer, DicomSCP...)
                                            or a (name, host, port) tuple
  service(name, mode, vip, port, real_servers, health_check=..., **fields) -> list[str]
                                            one virtual service's lines; `fields` are written as given
                                            (`fallback="{maintenance_page: true}"`)
  config_text(*services, settings=...) -> str
                                            version 1, the settings line, the services
  http_service_config(port, servers, ...) -> str   a layer7-http VIP with an HTTP check in front of `servers`
  tcp_service_config(port, servers, ...) -> str    a layer7-tcp VIP with a connect check in front of `servers`
  show_stat_config(health_check=..., layer4=...) -> str
                                            the configuration of the recorded `show stat` (SHOW_STAT)

max_connections stays low by default: HAProxy asks for about two file descriptors per connection, and
test machines (containers) often cap open files at a few thousands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

SETTINGS = "{max_connections: 2000}"


def _yaml_value(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def real_server(rs: Any, **fields: Any) -> str:
    """One real server in flow style; `rs` has .name, .host, .port, or is (name, host, port)."""
    name, host, port = rs if isinstance(rs, tuple) else (rs.name, rs.host, rs.port)
    extra = "".join(f", {key}: {_yaml_value(value)}" for key, value in fields.items() if value is not None)
    return f"{{name: {name}, address: {host}, port: {port}{extra}}}"


def http_check(interval_ms: int = 300, timeout_ms: int | None = None, rise: int = 1, fall: int = 2, path: str = "/") -> str:
    timeout_ms = min(interval_ms, 1000) if timeout_ms is None else timeout_ms
    return f"{{type: http, path: {path}, interval: {interval_ms}ms, timeout: {timeout_ms}ms, rise: {rise}, fall: {fall}}}"


def service(name: str, mode: str, vip: str | None, port: int | None, real_servers: Iterable[str], *,
            health_check: str | None = None, **fields: Any) -> list[str]:  # fmt: skip
    """The lines of one virtual service; `real_servers` are real_server() strings; `fields` come after the check."""
    lines = [f"  - name: {name}", f"    mode: {mode}"]
    if vip is not None:
        lines.append(f"    listen: [{{address: {vip}, port: {port}}}]")
    if health_check is not None:
        lines.append(f"    health_check: {health_check}")
    lines += [f"    {key}: {_yaml_value(value)}" for key, value in fields.items() if value is not None]
    lines.append("    real_servers:")
    lines += [f"      - {rs}" for rs in real_servers]
    return lines


def config_text(*services: list[str], settings: str | None = SETTINGS) -> str:
    lines = ["version: 1"]
    if settings is not None:
        lines.append(f"settings: {settings}")
    lines.append("virtual_services:")
    for lines_of_one in services:
        lines += lines_of_one
    return "\n".join(lines) + "\n"


def http_service_config(
    port: int,
    servers: list,
    *,
    name: str = "web",
    vip: str = "127.0.0.1",
    interval_ms: int = 300,
    fall: int = 2,
    rise: int = 1,
    weights: dict[str, int] | None = None,
    max_connections: int = 2000,
) -> str:
    """A one-service configuration: a layer7-http VIP with an HTTP health check, in front of `servers`."""
    weights = weights or {}
    return config_text(
        service(
            name,
            "layer7-http",
            vip,
            port,
            [real_server(s, weight=weights.get(s.name)) for s in servers],
            health_check=http_check(interval_ms, rise=rise, fall=fall),
        ),  # fmt: skip
        settings=f"{{max_connections: {max_connections}}}",
    )


def tcp_service_config(port: int, servers: list, *, name: str = "pacs", vip: str = "127.0.0.1",
                       health_check: str = "{type: connect, interval: 300ms, timeout: 300ms, rise: 1, fall: 2}",
                       settings: str = SETTINGS) -> str:  # fmt: skip
    """A one-service configuration: a layer7-tcp VIP in front of `servers` (a connect check by default)."""
    return config_text(
        service(name, "layer7-tcp", vip, port, [real_server(s) for s in servers], health_check=health_check),
        settings=settings,
    )


# A `show stat` of HAProxy recorded on show_stat_config(): the status and the WebUI read it instead of a live one.
SHOW_STAT = Path(__file__).parents[1] / "unit" / "engines" / "haproxy" / "data" / "show_stat.csv"


def show_stat_config(health_check: str | None = None, layer4: bool = False) -> str:
    """The configuration SHOW_STAT was recorded on: `web` (seven real servers in every state) and the backend-only
    `only`; `health_check` (flow-style YAML) for `web`, and with `layer4` a Layer 4 service `l4` HAProxy does not
    see. The text is fixed: tests store it as a revision."""
    check = f"    health_check: {health_check}\n" if health_check else ""
    l4 = (
        "  - name: l4\n    mode: layer4-nat\n    listen: [{address: 127.0.0.1, port: 9000-9002}]\n"
        "    real_servers:\n      - {name: x, address: 127.0.0.3}\n"
    )
    return (
        "\nversion: 1\nvirtual_services:\n"
        "  - name: web\n    mode: layer7-http\n    listen: [{address: 127.0.0.1, port: 18380}]\n    default_service: only\n"
        + check
        + "    real_servers:\n"
        "      - {name: rs1, address: 127.0.0.2, port: 18381}\n"
        "      - {name: rs2, address: 127.0.0.2, port: 18382}\n"
        "      - {name: rs3, address: 127.0.0.2, port: 18383, state: drain}\n"
        "      - {name: rs4, address: 127.0.0.2, port: 18384, state: halt}\n"
        "      - {name: rs5, address: 127.0.0.2, port: 18385}\n"
        "      - {name: rs6, address: 127.0.0.2, port: 18386}\n"
        "      - {name: rs7, address: 127.0.0.2, port: 18387, backup: true}\n"
        "  - name: only\n    mode: backend-only\n    real_servers:\n      - {name: a, address: 127.0.0.2, port: 18385}\n"
        + (l4 if layer4 else "")
    )
