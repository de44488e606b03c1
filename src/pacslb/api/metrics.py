"""The controller's own Prometheus metrics (text exposition format 0.0.4), without a client library.

Counters and a duration summary fed by the management API and the change path; `render` is pure.
HAProxy's exporter (its `prometheus-exporter` service on a Unix socket) is appended by the route.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(labels.items())) + "}"


@dataclass
class ControllerMetrics:
    """Counters of one controller's life; every method is cheap and never raises."""

    started_at: float = field(default_factory=time.time)
    changes: dict[tuple[str, str], int] = field(default_factory=dict)  # (method, outcome) -> count
    apply_seconds_sum: float = 0.0
    apply_seconds_count: int = 0
    logins_failed: int = 0
    requests: dict[str, int] = field(default_factory=dict)  # status class -> count

    def change(self, result: dict[str, Any]) -> None:
        """Count one change (a ChangeResult's dict)."""
        outcome = str(result.get("outcome", "unknown"))
        method = str((result.get("engine") or {}).get("method") or (result.get("plan") or {}).get("method") or "none")
        self.changes[(method, outcome)] = self.changes.get((method, outcome), 0) + 1
        total = (result.get("timings") or {}).get("total")
        if outcome == "applied" and isinstance(total, (int, float)):
            self.apply_seconds_sum += float(total)
            self.apply_seconds_count += 1

    def login_failed(self) -> None:
        self.logins_failed += 1

    def request(self, status: int) -> None:
        key = f"{status // 100}xx"
        self.requests[key] = self.requests.get(key, 0) + 1

    def render(self, extra: dict[str, tuple[str, str, list[tuple[dict[str, str], float]]]] | None = None) -> str:
        """The metrics as Prometheus text; `extra` adds gauges: name -> (help, type, [(labels, value)])."""
        families: dict[str, tuple[str, str, list[tuple[dict[str, str], float]]]] = {
            "pacslb_controller_start_time_seconds": ("when the controller started (Unix time)", "gauge",
                                                     [({}, self.started_at)]),
            "pacslb_changes_total": ("configuration changes through the management API, by engine method and outcome",
                                     "counter", [({"method": m, "outcome": o}, n) for (m, o), n in sorted(self.changes.items())]),
            "pacslb_apply_duration_seconds": ("time to apply a change, from validation to engine confirmation", "summary",
                                              []),
            "pacslb_logins_failed_total": ("failed logins (wrong password, unknown user)", "counter",
                                           [({}, self.logins_failed)]),
            "pacslb_api_requests_total": ("requests answered by the management API, by status class", "counter",
                                          [({"code": k}, n) for k, n in sorted(self.requests.items())]),
        }  # fmt: skip
        families.update(extra or {})
        lines: list[str] = []
        for name, (text, kind, samples) in families.items():
            lines.append(f"# HELP {name} {text}")
            lines.append(f"# TYPE {name} {kind}")
            if name == "pacslb_apply_duration_seconds":
                lines.append(f"{name}_sum {self.apply_seconds_sum:.6f}")
                lines.append(f"{name}_count {self.apply_seconds_count}")
                continue
            for labels, value in samples:
                lines.append(f"{name}{_labels(labels)} {_number(value)}")
        return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:.6f}"
