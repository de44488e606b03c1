"""Pure helpers of the WebUI's pages: state colours, readable times and durations.

Colours are CSS classes (static/style.css): one table so that the dashboard, the legend and the
tests agree on what an operator sees at a glance.
"""

from __future__ import annotations

import datetime as dt

from ..controller.status import CheckOutcome, ServerState, ServiceState, VirtualServiceStatus

# state -> CSS class: UP green, DOWN red, DRAIN amber, MAINT (halt) grey
STATE_CLASS: dict[str, str] = {
    ServerState.UP.value: "st-up",
    ServerState.DOWN.value: "st-down",
    ServerState.DRAIN.value: "st-drain",
    ServerState.MAINT.value: "st-maint",
    ServerState.NO_CHECK.value: "st-up",  # not checked: always taken as up
    ServerState.UNKNOWN.value: "st-unknown",
    ServiceState.STOPPED.value: "st-maint",
}

CHECK_CLASS: dict[str, str] = {
    CheckOutcome.PASSED.value: "ck-passed",
    CheckOutcome.FAILED.value: "ck-failed",
    CheckOutcome.PENDING.value: "ck-pending",
    CheckOutcome.NONE.value: "ck-none",
}

# What the dashboard calls a state, in the operator's words (MAINT is what `halt` does).
STATE_LABEL: dict[str, str] = {
    ServerState.MAINT.value: "HALT",
    ServerState.NO_CHECK.value: "UP (no check)",
}


def state_class(state: str | ServerState | ServiceState) -> str:
    """The CSS class of a real server's or virtual service's state; unknown states are grey-blue."""
    value = state.value if isinstance(state, (ServerState, ServiceState)) else str(state)
    return STATE_CLASS.get(value, "st-unknown")


def state_label(state: str | ServerState | ServiceState) -> str:
    value = state.value if isinstance(state, (ServerState, ServiceState)) else str(state)
    return STATE_LABEL.get(value, value)


def check_class(outcome: str | CheckOutcome) -> str:
    value = outcome.value if isinstance(outcome, CheckOutcome) else str(outcome)
    return CHECK_CLASS.get(value, "ck-none")


def duration(seconds: float | int | None) -> str:
    """'45s', '12m', '3h 05m', '2d 4h'; '-' when unknown."""
    if seconds is None or seconds < 0:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def timestamp(epoch: float | None) -> str:
    """UTC time of a revision or a sample, to the second."""
    if epoch is None:
        return "-"
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def expiry_class(days_left: float | None) -> str:
    """Certificates: red when expired or within 14 days, amber within 30, green otherwise."""
    if days_left is None:
        return "st-unknown"
    if days_left < 14:
        return "st-down"
    if days_left < 30:
        return "st-drain"
    return "st-up"


def service_overview(vs: VirtualServiceStatus) -> tuple[str, str]:
    """A virtual service at a glance: (CSS class, 'up/total') for the dashboard's overview.

    Red when it cannot serve (DOWN, STOPPED, or no real server up); amber when some real servers are not
    in service (down, drained or halted); green when all are up; grey-blue when the engine does not say.
    """
    servers = vs.real_servers
    serving = [rs for rs in servers if rs.state in (ServerState.UP, ServerState.NO_CHECK)]
    count = f"{len(serving)}/{len(servers)}" if servers else ""
    if vs.state is ServiceState.UNKNOWN:  # e.g. Layer 4 services, which nftables carries unobserved
        return "st-unknown", count
    if vs.state in (ServiceState.DOWN, ServiceState.STOPPED) or (servers and not serving):
        return "st-down", count
    if len(serving) < len(servers):
        return "st-drain", count
    return "st-up", count
