"""State colours and readable values (pacslb.web.view): pure."""

from pacslb.controller.status import CheckOutcome, ServerState, ServiceState
from pacslb.web.view import check_class, duration, expiry_class, state_class, state_label


def test_state_colours():
    assert state_class(ServerState.UP) == "st-up"  # green
    assert state_class(ServerState.DOWN) == "st-down"  # red
    assert state_class(ServerState.DRAIN) == "st-drain"  # amber
    assert state_class(ServerState.MAINT) == "st-maint"  # grey: halt
    assert state_class(ServiceState.STOPPED) == "st-maint"
    assert state_class("no-check") == "st-up"
    assert state_class(ServerState.UNKNOWN) == state_class("something new") == "st-unknown"
    assert state_label(ServerState.MAINT) == "HALT" and state_label("DRAIN") == "DRAIN"


def test_every_state_has_a_colour_in_the_stylesheet():
    from pacslb.web.context import STATIC_DIR

    css = (STATIC_DIR / "style.css").read_text()
    for state in [*ServerState, *ServiceState]:
        assert f".{state_class(state)} " in css
    for outcome in CheckOutcome:
        assert f".{check_class(outcome)} " in css


def test_durations_and_expiry():
    assert [duration(v) for v in (None, 5, 125, 3 * 3600 + 300, 2 * 86400 + 4 * 3600)] == ["-", "5s", "2m", "3h 05m", "2d 4h"]
    assert [expiry_class(d) for d in (None, -1, 13.9, 20, 365)] == ["st-unknown", "st-down", "st-down", "st-drain", "st-up"]


def test_service_overview_at_a_glance():
    from pacslb.controller.status import RealServerStatus, VirtualServiceStatus
    from pacslb.web.view import service_overview

    def vs(state, *servers):
        return VirtualServiceStatus(
            name="v",
            mode="layer7-http",
            state=state,
            real_servers=[
                RealServerStatus(name=f"rs{i}", address="a:1", state=s, configured_state="online") for i, s in enumerate(servers)
            ],
        )

    assert service_overview(vs(ServiceState.UP, ServerState.UP, ServerState.NO_CHECK)) == ("st-up", "2/2")
    assert service_overview(vs(ServiceState.UP, ServerState.UP, ServerState.DRAIN)) == ("st-drain", "1/2")
    assert service_overview(vs(ServiceState.UP, ServerState.UP, ServerState.DOWN)) == ("st-drain", "1/2")
    assert service_overview(vs(ServiceState.UP, ServerState.MAINT, ServerState.DOWN)) == ("st-down", "0/2")
    assert service_overview(vs(ServiceState.DOWN)) == ("st-down", "")
    assert service_overview(vs(ServiceState.UP)) == ("st-up", "")  # its rules send requests elsewhere
    assert service_overview(vs(ServiceState.UNKNOWN, ServerState.UNKNOWN)) == ("st-unknown", "0/1")
