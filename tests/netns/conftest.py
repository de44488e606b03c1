"""Fixtures of the network-namespace tests (root).

bed     the layer 4 bed of support/netns.py (a client, the load balancer, two real servers, each in its
        own namespace, on one bridge): namespaces named pacslb-<pid>-<n>-<role>, removed in teardown,
        also on failure, with every process the bed started stopped by its PID
"""

from __future__ import annotations

import os

import pytest

from support.netns import layer4_bed


@pytest.fixture
def bed():
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    with layer4_bed() as b:
        yield b
