"""Metrics history (pacslb.store.metrics): counters from `show stat`, rates, and the 24 h window in SQLite."""

from pathlib import Path

from pacslb.engines.haproxy.runtime import parse_stat
from pacslb.model import load_text
from pacslb.store.metrics import Counters, MetricsStore, Sample, rates
from pacslb.web.counters import counters_from_rows
from pacslb.web.logtail import tail

SHOW_STAT = Path(__file__).parents[1] / "unit" / "engines" / "haproxy" / "data" / "show_stat.csv"

CONFIG = """
version: 1
virtual_services:
  - {name: web, mode: layer7-http, listen: [{address: 127.0.0.1, port: 18380}], default_service: only,
     real_servers: [{name: rs1, address: 127.0.0.2, port: 1}]}
  - {name: only, mode: backend-only, real_servers: [{name: a, address: 127.0.0.2, port: 2}]}
  - {name: l4, mode: layer4-nat, listen: [{address: 127.0.0.1, port: 9000}], real_servers: [{name: x, address: 127.0.0.3}]}
  - {name: missing, mode: layer7-tcp, listen: [{address: 127.0.0.1, port: 9100}], real_servers: [{name: y, address: 127.0.0.4, port: 3}]}
"""


def test_counters_of_the_services_haproxy_reports():
    config = load_text(CONFIG).config
    rows = parse_stat(SHOW_STAT.read_text())
    found = counters_from_rows(config, rows)
    assert set(found) == {"web", "only"}  # layer 4 is nftables'; 'missing' is not reported
    assert found["web"] == Counters(requests=1, errors=0, sessions=0)  # the frontend's req_tot


def test_rates_need_two_readings_and_survive_a_counter_reset():
    first = {"web": Counters(100, 2, 5)}
    assert rates(None, first, 10, 1000.0) == []
    second = {"web": Counters(150, 4, 7), "new": Counters(1, 0, 0)}
    assert rates(first, second, 10, 1010.0) == [Sample(1010.0, "web", 5.0, 7, 0.2)]
    after_reload = {"web": Counters(30, 1, 2)}  # a new worker counts from zero
    assert rates(second, after_reload, 10, 1020.0) == [Sample(1020.0, "web", 3.0, 2, 0.1)]


def test_the_store_keeps_24_hours_and_prunes_older_rows(tmp_path):
    now = [100_000.0]
    store = MetricsStore(tmp_path / "metrics.sqlite", clock=lambda: now[0])
    store.add([Sample(now[0] - 90_000, "web", 1, 1, 0), Sample(now[0] - 3600, "web", 2, 2, 0),
               Sample(now[0], "web", 3, 3, 1), Sample(now[0], "only", 4, 0, 0)])  # fmt: skip
    assert store.count() == 3  # the 25 h old one was pruned as it was written
    series = store.series(now[0] - 3600)
    assert [s.requests for s in series["web"]] == [2, 3] and [s.service for s in series["only"]] == ["only"]
    assert [s.requests for s in store.series(now[0] - 60, "web")["web"]] == [3]
    now[0] += 24 * 3600 - 1800  # the sample of an hour ago is now older than 24 h
    assert store.prune() == 1
    assert store.count() == 2


def test_log_tail(tmp_path):
    log = tmp_path / "haproxy.log"
    assert tail(log, 10) == []
    log.write_bytes(b"".join(b"line %d\n" % i for i in range(100_000)) + b"bad \xff byte\n")
    assert tail(log, 3) == ["line 99998", "line 99999", "bad \ufffd byte"]
    assert tail(log, 2, contains="LINE 5") == ["line 59998", "line 59999"]  # any case
    assert tail(log, 1, contains="line 99998") == ["line 99998"]
