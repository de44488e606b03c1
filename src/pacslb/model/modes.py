"""What kind of service, scheduler, real-server state and protocol: the model's enumerations.

A module of their own, so that modules the configuration model imports (client_address.py, ...) can use them
without importing model/config.py.
"""

from __future__ import annotations

from enum import Enum


class Mode(str, Enum):
    LAYER7_HTTP = "layer7-http"
    LAYER7_TCP = "layer7-tcp"
    LAYER4_NAT = "layer4-nat"
    LAYER4_SNAT = "layer4-snat"
    LAYER4_DR = "layer4-dr"
    BACKEND_ONLY = "backend-only"

    # identity, not `in (...)`: a str enum's == compares strings, and these run per service on every change
    @property
    def is_layer7(self) -> bool:
        return self is Mode.LAYER7_HTTP or self is Mode.LAYER7_TCP

    @property
    def is_layer4(self) -> bool:
        return self is Mode.LAYER4_NAT or self is Mode.LAYER4_SNAT or self is Mode.LAYER4_DR


class Scheduler(str, Enum):
    WEIGHTED_ROUND_ROBIN = "weighted-round-robin"
    WEIGHTED_LEAST_CONNECTIONS = "weighted-least-connections"
    SOURCE_HASH = "source-hash"


class RealServerState(str, Enum):
    ONLINE = "online"
    DRAIN = "drain"  # finishes existing sessions and persistent clients, takes no new ones
    HALT = "halt"  # no traffic at all


class Protocol(str, Enum):
    TCP = "tcp"
    UDP = "udp"
    TCP_UDP = "tcp+udp"
