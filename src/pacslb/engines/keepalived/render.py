"""keepalived.conf for the HA pair, rendered from the model's `ha` section: a pure function.

One VRRPv3 instance (`pacslb`) carries every floating IP (see ADVERT_ADDRESS for what adverts carry). Both nodes start in BACKUP, so that
`nopreempt` works (a node that comes back never takes the floating IPs from a healthy master) unless
`preempt` is set. The instance tracks HAProxy with a script (the master's PID from HAProxy's pidfile
is alive): a master whose HAProxy is gone enters FAULT and hands the floating IPs over. State changes
go to a notify script that appends them, with the time, to a file the controller reads.

With `split_brain: keep-current` a tracked file adds a bonus to the priority; the controller writes
it (ha/pair.py) on the node that holds the floating IPs while the peer is seen as backup, so
that after a cut peer link the node that was master before the cut wins.

Process-name tracking (`vrrp_track_process`) is not used: it matches HAProxy processes of any node in
the PID namespace (two appliances on one host in tests), where a PID file is exact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ...model.config import Config
from ...model.ha_checks import floating_ips
from .. import templating

TEMPLATES = Path(__file__).parent / "templates"

# VRRP adverts carry one address that depends on the virtual router ID only (a /32 or /128 link-local
# address the master also holds); every floating IP is `virtual_ipaddress_excluded`. keepalived drops
# adverts whose address list differs from its own, so advertising the floating IPs themselves would
# let a change of them, applied on one node a moment before the other (configuration sync), make the
# backup ignore the master and claim the floating IPs too.
ADVERT_ADDRESS = {4: "169.254.77.{vrid}/32", 6: "fe80::77:{vrid}/128"}
# The bonus the split-brain file gives (0 or this): more than any difference of two priorities (1..254)
# would be needed in general; 100 is more than the default gap (150 - 100) and keeps the sum below 255.
SPLIT_BRAIN_BONUS = 100

_CONTROL = re.compile(r"[\x00-\x1f\x7f\"'\\]")


class RenderError(ValueError):
    """The model cannot be written as keepalived.conf (no `ha` section, an unquotable path)."""


@dataclass(frozen=True)
class KeepalivedPaths:
    """keepalived's files of one appliance, under <state>/keepalived/."""

    root: Path  # the state directory

    @property
    def dir(self) -> Path:
        return self.root / "keepalived"

    @property
    def config(self) -> Path:
        return self.dir / "keepalived.conf"

    @property
    def pid(self) -> Path:
        return self.dir / "keepalived.pid"

    @property
    def vrrp_pid(self) -> Path:
        return self.dir / "vrrp.pid"

    @property
    def log(self) -> Path:
        return self.dir / "keepalived.log"

    @property
    def check_script(self) -> Path:
        return self.dir / "check-haproxy.sh"

    @property
    def notify_script(self) -> Path:
        return self.dir / "notify.sh"

    @property
    def events(self) -> Path:
        """One line per VRRP state change: `UNIX-TIME STATE PRIORITY` (written by notify.sh), and the controller's
        `UNIX-TIME STOP` / `UNIX-TIME START` around keepalived's stops and fresh starts (process.mark)."""
        return self.dir / "vrrp-events"

    @property
    def bonus(self) -> Path:
        """The split-brain priority bonus (keep-current): 0 or SPLIT_BRAIN_BONUS."""
        return self.dir / "split-brain-bonus"

    @property
    def haproxy_pid(self) -> Path:
        return self.root / "haproxy" / "haproxy.pid"


@dataclass(frozen=True)
class KeepalivedView:
    router_id: str
    interface: str
    virtual_router_id: int
    priority: int
    advert_int: str
    preempt: bool
    unicast: bool
    address: str
    peer_address: str
    garp_repeat: int
    garp_delay: int
    advertised: tuple[str, ...]
    excluded: tuple[str, ...]
    check_script: str | None
    bonus_file: str | None
    notify_script: str


def _path(path: Path) -> str:
    text = str(path)
    if _CONTROL.search(text):
        raise RenderError(f"{text!r} cannot be written to keepalived.conf (quote, backslash or control character)")
    return text


def _seconds(milliseconds: int) -> str:
    """keepalived's advert_int in seconds: 100 ms is '0.1', 1000 ms is '1'."""
    return f"{milliseconds / 1000:.2f}".rstrip("0").rstrip(".")


def build(config: Config, paths: KeepalivedPaths) -> KeepalivedView:
    """The view of keepalived.conf in keepalived's words (the first step of `render`)."""
    ha = config.ha
    if ha is None:
        raise RenderError("the configuration has no `ha` section: there is no HA pair to render")
    ips = tuple(ip.interface_address for ip in floating_ips(config))
    family = 6 if ":" in ha.address else 4
    return KeepalivedView(
        router_id=f"pacslb_{ha.role}",
        interface=ha.interface,
        virtual_router_id=ha.virtual_router_id,
        priority=ha.effective_priority,
        advert_int=_seconds(ha.advert_interval.milliseconds),
        preempt=ha.preempt,
        unicast=ha.transport == "unicast",
        address=ha.address,
        peer_address=ha.peer_address,
        garp_repeat=ha.garp_repeat,
        garp_delay=ha.garp_delay.milliseconds // 1000,
        advertised=(ADVERT_ADDRESS[family].format(vrid=ha.virtual_router_id),),
        excluded=ips,
        check_script=_path(paths.check_script) if ha.track_haproxy else None,
        bonus_file=_path(paths.bonus) if ha.split_brain == "keep-current" else None,
        notify_script=_path(paths.notify_script),
    )


def render(config: Config, paths: KeepalivedPaths) -> str:
    """The whole keepalived.conf for `config`: the same input always gives the same bytes."""
    env = templating.environment(TEMPLATES, {"q": lambda value: f'"{value}"'})
    return env.get_template("keepalived.conf.j2").render(k=build(config, paths)).rstrip("\n") + "\n"


def render_scripts(paths: KeepalivedPaths) -> dict[Path, str]:
    """The helper scripts keepalived runs (mode 0755): the HAProxy check and the notify script."""
    haproxy_pid = _path(paths.haproxy_pid)
    events = _path(paths.events)
    return {
        paths.check_script: (
            "#!/bin/sh\n"
            "# keepalived's check of this appliance's HAProxy: its master (PID from the pidfile) is alive.\n"
            f"pid=$(cat '{haproxy_pid}' 2>/dev/null) || exit 1\n"
            '[ -n "$pid" ] && [ -d "/proc/$pid" ] && ! grep -q "^State:.*Z" "/proc/$pid/status"\n'
        ),
        paths.notify_script: (
            "#!/bin/sh\n"
            "# keepalived calls: notify.sh TYPE NAME STATE PRIORITY; the controller reads the lines.\n"
            f'printf \'%s %s %s\\n\' "$(date +%s.%N)" "$3" "$4" >> \'{events}\'\n'
        ),
    }
