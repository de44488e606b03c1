"""A verify report for a person (text) and for a program (JSON-ready data); pure."""

from __future__ import annotations

from typing import Any

from .routes import DEFAULT_ROUTE, Route
from .runner import Report, RouteResult


def _request(route: Route) -> str:
    if route.not_sent is not None:
        return "(not sent)"
    req = route.request
    if route.kind in ("http", "https"):
        words = [f"GET {req.path}"] + ([f"Host {req.host}"] if req.host else []) + [f"{n}: {v}" for n, v in req.headers]
        return ", ".join(words) + (f", SNI {req.sni}" if req.sni else "")
    if route.kind == "tls":
        return f"TLS SNI {req.sni}"
    return {"amqp": "AMQP header", "dicom": f"DICOM C-ECHO to {route.called_ae}"}.get(route.kind, "TCP connect")


def result_data(result: RouteResult) -> dict[str, Any]:
    """One route's result as plain data."""
    route = result.route
    return {
        "virtual_service": route.virtual_service,
        "listener": f"{route.address}:{route.port}",
        "rule": route.rule,
        "request": _request(route),
        "expect": {"service": route.expect_service, "status": route.expect_status},
        "verdict": result.verdict,
        "service": result.service,
        "real_server": result.server,
        "status": result.status,
        "time_ms": result.time_ms,
        "problem": result.problem,
    }


def report_data(report: Report) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for r in report.results:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
    return {
        "ok": report.ok,
        "counts": counts,
        "routes": [result_data(r) for r in report.results],
        "shadowed_rules": report.shadowed,
    }


def report_text(report: Report) -> str:
    """One line per route under its virtual service and listener, then a summary line."""
    lines: list[str] = []
    where = None
    for r in report.results:
        route = r.route
        if (route.virtual_service, route.address, route.port) != where:
            where = (route.virtual_service, route.address, route.port)
            lines.append(f"{route.virtual_service} {route.address}:{route.port}")
        expected = route.expect_service or f"status {route.expect_status}"
        answered = f"{r.service}/{r.server}" if r.server else "-"
        timing = f"{r.time_ms:.0f} ms" if r.time_ms is not None else ""
        rule = "default" if route.rule == DEFAULT_ROUTE else route.rule
        line = f"  {r.verdict.upper():10} {rule:28} {_request(route):34} -> {answered} {r.status} {timing}".rstrip()
        if r.verdict != "ok":
            line += f"  (expected {expected}; {r.problem})"
        lines.append(line)
    data = report_data(report)
    summary = ", ".join(f"{n} {v}" for v, n in sorted(data["counts"].items()))
    lines.append(f"{len(report.results)} routes: {summary}" + ("" if report.ok else " -- VERIFY FAILED"))
    return "\n".join(lines)
