"""The graphs page's data for uPlot: the stored samples as columns, a gap as a null so that the line breaks."""

from __future__ import annotations

import json

from pacslb.store.metrics import Sample
from pacslb.web.graphdata import columns


def test_samples_become_columns_in_time_order_within_the_span():
    samples = [Sample(110.0, "web", 2.5, 3, 0.0), Sample(100.0, "web", 1.0, 2, 0.5), Sample(50.0, "web", 9.0, 9, 9.0)]
    data = columns(samples, start=60.0, end=200.0)
    assert data == {"start": 60.0, "end": 200.0, "t": [100.0, 110.0], "requests": [1.0, 2.5], "sessions": [2, 3],
                    "errors": [0.5, 0.0]}  # fmt: skip
    json.dumps(data)  # what the template puts in data-series


def test_a_gap_breaks_the_line():
    samples = [Sample(100.0, "web", 1.0, 1, 0.0), Sample(200.0, "web", 2.0, 2, 0.0)]
    data = columns(samples, start=0.0, end=300.0, gap=35.0)
    assert data["t"] == [100.0, 150.0, 200.0] and data["requests"] == [1.0, None, 2.0] and data["errors"][1] is None


def test_the_graphs_page_carries_the_same_samples_for_the_browser(web, web_app):
    import html
    import re
    import time

    from pacslb.store.metrics import MetricsStore
    from pacslb.web.history import metrics_path

    store = MetricsStore(metrics_path(web_app.controller.paths.root))
    now = time.time()
    store.add([Sample(now - 600 + 10 * i, "web", float(i), i % 5, 0.0) for i in range(60)])
    page = web("viewer").get("/graphs").text
    found = re.search(r'data-service="web" data-series="([^"]+)"', page)
    assert found, "no data-series on the web section"
    data = json.loads(html.unescape(found[1]))
    assert len(data["t"]) == 60 and data["requests"][:3] == [0.0, 1.0, 2.0] and data["sessions"][:6] == [0, 1, 2, 3, 4, 0]
    assert '<script src="/static/vendor/uPlot.iife.min.js"></script>' in page and "/static/graphs.js" in page
