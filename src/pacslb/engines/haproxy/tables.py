"""The mapping tables: how the model's values are spelled in HAProxy, and the fixed values the transforms share."""

from __future__ import annotations

from ...model.config import Mode, Scheduler

PROXY_MODE = {Mode.LAYER7_HTTP: "http", Mode.LAYER7_TCP: "tcp"}

BALANCE = {
    Scheduler.WEIGHTED_ROUND_ROBIN: "roundrobin",
    Scheduler.WEIGHTED_LEAST_CONNECTIONS: "leastconn",
    Scheduler.SOURCE_HASH: "source",
}
# Consistent hashing moves few clients when a server comes or goes, and lets the runtime API
# add servers (map-based `balance source` refuses them).
HASH_TYPE = {Scheduler.SOURCE_HASH: "consistent"}

SEND_PROXY = {"none": None, "v1": "send-proxy", "v2": "send-proxy-v2"}

TLS_VERSION = {"1.0": "TLSv1.0", "1.1": "TLSv1.1", "1.2": "TLSv1.2", "1.3": "TLSv1.3"}

# Mozilla's server-side TLS recommendations (ssl-config.mozilla.org, guidelines 5.7).
MOZILLA_INTERMEDIATE_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
)
MOZILLA_CIPHERSUITES = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
CIPHER_POLICY = {
    # policy: (TLS 1.2 ciphers, TLS 1.3 suites); modern is TLS 1.3 only, so it names no 1.2 ciphers
    "intermediate": (MOZILLA_INTERMEDIATE_CIPHERS, MOZILLA_CIPHERSUITES),
    "modern": (None, MOZILLA_CIPHERSUITES),
}

HEADER_MATCH = {"exact": "str", "begins": "beg", "contains": "sub"}

# Which section a timeout belongs to: HAProxy takes client-side timeouts in frontends only and
# server-side ones in backends only.
TIMEOUT_NAMES = {
    "connect": "connect",
    "client": "client",
    "server": "server",
    "tunnel": "tunnel",
    "http_request": "http-request",
    "queue": "queue",
}
FRONTEND_TIMEOUTS = ("client", "http_request")
BACKEND_TIMEOUTS = ("connect", "server", "tunnel", "queue")

LOG_TO_STREAM = {"stdout", "stderr"}

# Waiting for a TLS ClientHello (SNI rules, SSL session ID persistence) lasts at most this long.
INSPECT_DELAY = "5s"
