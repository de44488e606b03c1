"""cluster/established.py: the connections a drained node still holds, per service of its VIPs."""

from __future__ import annotations

from types import SimpleNamespace

from pacslb.cluster.established import established

from .test_announce import cluster_config


def _status(**current: int):
    return SimpleNamespace(
        virtual_services=[SimpleNamespace(name=n, sessions=SimpleNamespace(current=c)) for n, c in current.items()]
    )


def test_layer7_services_of_the_vips_are_counted_layer4_named_loopback_left_out() -> None:
    held = established(cluster_config(), _status(WFC_443=7, WFC_80=2, DICOM_104=0, local=5))
    assert held == {
        "total": 9,
        "services": {"WFC_443": {"vips": ["192.0.2.10"], "current": 7}, "WFC_80": {"vips": ["192.0.2.10"], "current": 2}},
        "not_counted": ["DICOM_104"],  # the kernel's connections: said, not shown as 0
    }


def test_a_service_haproxy_does_not_report_counts_zero() -> None:
    held = established(cluster_config(), _status(WFC_443=3))
    assert held["total"] == 3 and held["services"]["WFC_80"]["current"] == 0
