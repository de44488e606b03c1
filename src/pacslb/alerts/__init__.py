"""Alerts: events as values (events.py), what changed between two looks (watch.py), the flap policy (flap.py),
how each receiver's message looks (format.py), all pure; delivery at the edge (receivers.py) and the subsystem
that queues, retries and counts (service.py). docs/alerts.md lists every event."""
