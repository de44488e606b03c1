"""Start the simulated True PACS services for an end-to-end test (the True PACS e2e and the WebUI browser test)."""

from __future__ import annotations

import random
import socket
import sys
from pathlib import Path
from typing import IO

from pacslb.demo import DemoError, DemoProcess
from pacslb.demo.truepacs import TruePacsDemo
from pacslb.templates.true_pacs import SERVICES

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
