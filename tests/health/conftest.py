"""Real peers for the PACS-aware checks (see health_peers.py).

rabbitmq       session scope: one RabbitMQ node of its own on loopback (own epmd, ports, dirs)
dicom_scp      factory: dicom_scp(ae_title, kind="storescp"|"dcmqrscp") -> DicomSCP, stopped at teardown
"""

from __future__ import annotations

import shutil

import pytest
from health_peers import RABBITMQ_BIN, DicomSCP, RabbitMQ


@pytest.fixture(scope="session")
def rabbitmq():
    if not (RABBITMQ_BIN / "rabbitmq-server").exists() or shutil.which("epmd") is None:
        pytest.skip("rabbitmq-server is not installed (Debian package rabbitmq-server)")
    node = RabbitMQ()
    node.start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def dicom_scp():
    started: list[DicomSCP] = []

    def make(ae_title: str = "ARCHIVE", kind: str = "storescp") -> DicomSCP:
        if shutil.which(kind) is None:
            pytest.skip(f"{kind} is not installed (Debian package dcmtk)")
        scp = DicomSCP(ae_title=ae_title, kind=kind)
        started.append(scp)
        return scp.start()

    yield make
    for scp in started:
        scp.stop()
