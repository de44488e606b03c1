"""The flap policy, pure: one message per thing (real server, virtual service) per interval, then a summary.

The first change of a thing goes out at once and opens an interval. Changes within it are held; at its end,
one summary tells how many there were and the state now, and opens the next interval (a thing that keeps
flapping gets one summary per interval). An interval that ends with nothing held closes: the next change
goes out at once again. Alerts without a flap key pass straight through.
"""

from __future__ import annotations

from dataclasses import dataclass

from .events import Alert, flap_summary


@dataclass
class _Window:
    ends: float
    first: Alert
    held: int = 0
    last: Alert | None = None


class FlapPolicy:
    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._windows: dict[str, _Window] = {}

    def offer(self, alert: Alert, now: float) -> list[Alert]:
        """The alerts to send now for `alert` (it, a due summary first, or nothing when held)."""
        out = self.tick(now)
        if alert.flap_key is None:
            return out + [alert]
        window = self._windows.get(alert.flap_key)
        if window is None:
            self._windows[alert.flap_key] = _Window(now + self.interval_s, alert)
            return out + [alert]
        window.held += 1
        window.last = alert
        return out

    def tick(self, now: float) -> list[Alert]:
        """Summaries of the intervals that ended by `now`; call it about once a second."""
        out: list[Alert] = []
        for key, window in list(self._windows.items()):
            if window.ends > now:
                continue
            if window.held and window.last is not None:
                out.append(flap_summary(window.first, window.last, window.held, self.interval_s, now))
                self._windows[key] = _Window(now + self.interval_s, window.last)
            else:
                del self._windows[key]
        return out

    def next_due(self) -> float | None:
        """When the next interval ends (None: none open)."""
        return min((w.ends for w in self._windows.values()), default=None)

    @property
    def held(self) -> int:
        return sum(w.held for w in self._windows.values())
