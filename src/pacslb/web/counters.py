"""What the metrics sampler counts from HAProxy's `show stat` rows: requests, errors and sessions of every
virtual service HAProxy carries (pure). The store (store/metrics.py) keeps the rates; it knows no engine."""

from __future__ import annotations

from typing import Iterable

from ..engines.haproxy.runtime import ProxyKind, StatRow
from ..model import Config, Mode
from ..store.metrics import Counters


def _field(row: StatRow, name: str) -> int:
    value = row.fields.get(name, "")
    try:
        return int(value)
    except ValueError:
        return 0


def _row_counters(row: StatRow, http: bool) -> tuple[int, int]:
    """(requests, errors) of one frontend or backend row."""
    requests = _field(row, "req_tot") if http else 0
    if not requests:
        requests = row.sessions_total  # TCP services: a connection is a request
    errors = _field(row, "hrsp_5xx") + _field(row, "econ")
    return requests, errors


def counters_from_rows(config: Config, rows: Iterable[StatRow]) -> dict[str, Counters]:
    """Counters of every virtual service HAProxy reports (pure). Layer 4 services (nftables') are left out.

    A service with a frontend is counted there (what its clients see; HAProxy's own 503s count too),
    plus its backend's connection errors; a backend-only service is counted on its backend.
    """
    by_proxy: dict[str, dict[ProxyKind, StatRow]] = {}
    for row in rows:
        if row.kind in (ProxyKind.FRONTEND, ProxyKind.BACKEND):
            by_proxy.setdefault(row.proxy, {})[row.kind] = row
    found: dict[str, Counters] = {}
    for vs in config.virtual_services:
        if vs.mode.is_layer4:
            continue
        proxies = by_proxy.get(vs.name, {})
        frontend, backend = proxies.get(ProxyKind.FRONTEND), proxies.get(ProxyKind.BACKEND)
        counted = frontend if frontend is not None and vs.mode is not Mode.BACKEND_ONLY else backend
        if counted is None:
            continue
        requests, errors = _row_counters(counted, http=counted.mode == "http")
        if counted is frontend and backend is not None:
            errors += _field(backend, "econ")
        found[vs.name] = Counters(requests, errors, counted.sessions_current)
    return found
