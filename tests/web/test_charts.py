"""The SVG line chart (pacslb.web.charts): pure."""

import re

from pacslb.web.charts import format_number, line_chart, nice_ceiling, path_data


def test_nice_ceiling():
    assert [nice_ceiling(v) for v in (0, 0.3, 1, 1.1, 3, 7, 42, 250, 251)] == [1, 0.5, 1, 2, 5, 10, 50, 250, 500]
    assert nice_ceiling(float("nan")) == 1


def test_format_number():
    assert [format_number(v) for v in (0, 2.5, 40, 36.841, 1200, 3_000_000, 0.25)] == [
        "0",
        "2.5",
        "40",
        "36.8",
        "1.2k",
        "3M",
        "0.25",
    ]


def test_path_maps_time_and_value_to_the_plot_and_breaks_at_gaps():
    points = [(100, 0), (110, 5), (120, 10), (200, 10), (210, 0)]
    d = path_data(points, start=100, end=300, top=10, width=200, height=100, gap=35)
    assert d == "M0.0,100.0 L10.0,50.0 L20.0,0.0 M100.0,0.0 L110.0,100.0"


def test_points_outside_the_window_and_above_the_top_are_clipped():
    d = path_data([(50, 1), (150, 99), (400, 1)], start=100, end=300, top=10, width=200, height=100, gap=35)
    assert d == "M50.0,0.0"


def test_line_chart_markup():
    svg = line_chart([(0, 1), (10, 3)], start=0, end=3600, title="requests/s", unit="/s", css_class="line-req")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert ">requests/s<" in svg and ">3/s<" in svg and ">-60 min<" in svg and ">now<" in svg and ">5<" in svg
    assert re.search(
        r'<path class="line-req" d="M[\d.]+,[\d.]+ L([\d.]+),([\d.]+)"/><circle class="line-req" cx="\1" cy="\2"', svg
    )
    empty = line_chart([], start=0, end=3600, title="a <b>")
    assert "no data" in empty and "a &lt;b&gt;" in empty and 'd=""' in empty and "<circle" not in empty
