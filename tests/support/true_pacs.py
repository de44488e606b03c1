"""The simulated True PACS services and an appliance on their plan, for end-to-end tests (the True PACS e2e,
`pacslb verify`, the WebUI browser test).

  start_services(state_dir, vip, lifetime, stderr)         the plan written, its services started
  true_pacs_appliance(logs, prefix, vip, lifetime, prepare) both, and `pacslb up`: a module fixture's body
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple

from pacslb.demo import DemoError, DemoProcess
from pacslb.demo.truepacs import TruePacsDemo
from pacslb.templates.true_pacs import SERVICES
from support.appliance import Appliance, new_state_dir

# Below Linux's ephemeral ports (32768-60999): every VIP port (up to 9094 + offset) and the WAF tier's ports
# (10080 + offset on) stay out of the range whose ports outgoing connections take, so none is held when bound.
OFFSETS = (20000, 22600)


def vip_ports_free(vip: str, offset: int) -> bool:
    """Every listening port of the template, moved by `offset`, is free on `vip`."""
    for spec in SERVICES:
        if spec.port is None:
            continue
        with socket.socket() as s:
            try:
                s.bind((vip, spec.port + offset))
            except OSError:
                return False
    return True


def free_port_offset(vip: str) -> int:
    for _ in range(200):
        offset = random.randrange(*OFFSETS)
        if vip_ports_free(vip, offset):
            return offset
    raise RuntimeError("no port offset with six free VIP ports")


def start_services(state_dir: Path, vip: str, lifetime: float, stderr: IO[bytes]) -> tuple[TruePacsDemo, DemoProcess]:
    """Write the demo plan and start its services on 127.<octet>.10.1 ...: another octet if another session holds one."""
    for octet in random.sample(range(200, 255), 5):
        plan = TruePacsDemo(state_dir, vip_address=vip, port_offset=free_port_offset(vip), server_octet=octet)
        plan.write()
        services = plan.services(max_lifetime=lifetime, stderr=stderr)
        try:
            services.start()
            return plan, services
        except DemoError as exc:
            print(f"simulated services on 127.{octet}.x.y did not start: {exc}", file=sys.stderr)
    raise AssertionError("the simulated services did not start")


class Running(NamedTuple):
    plan: TruePacsDemo
    services: DemoProcess
    appliance: Appliance
    prepared: Any  # what `prepare` answered


@contextlib.contextmanager
def true_pacs_appliance(logs: Path, prefix: str, vip: str, lifetime: float,
                        prepare: Callable[[TruePacsDemo], Any] = lambda plan: None) -> Iterator[Running]:  # fmt: skip
    """The simulated services (start_services), then `prepare(plan)` (e.g. a change of the configuration file),
    then `pacslb up` on the plan's configuration in a new state directory `/tmp/<prefix>XXXX/s`; logs in `logs`.
    The end, also after a failure: `pacslb stop`, the services, SIGKILL by PID for anything of the state directory
    still alive (HAProxy's log copied to `logs`), the state directory removed."""
    state_dir = new_state_dir(prefix, "s")
    services: DemoProcess | None = None
    appliance: Appliance | None = None
    services_log = open(logs / "services.log", "ab")
    try:
        plan, services = start_services(state_dir, vip, lifetime, services_log)
        prepared = prepare(plan)
        appliance = Appliance(state_dir=state_dir, config=plan.config_file, log=logs / "pacslb-up.log")
        appliance.up()
        yield Running(plan, services, appliance, prepared)
    finally:
        try:
            if appliance is not None:
                appliance.shut_down(before_kill=services.stop if services is not None else None,
                                    haproxy_log_to=logs / "haproxy.log", remove_state=False)  # fmt: skip
            elif services is not None:
                services.stop()
        finally:
            services_log.close()
            shutil.rmtree(state_dir.parent, ignore_errors=True)
