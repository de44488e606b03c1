"""Runtime operations on HAProxy: carrying out a plan's operations, and making what runs agree with the model.

  execute(api, operations)          the plan's operations, in order, through the runtime API (no reload)
  converge(api, config)             set every real server's admin state and weight to the model's; report
                                    servers that only a reload can add or remove
  save_server_state(paths, config)  the server-state file for the next worker: health from HAProxy,
                                    states and weights from the model (engines/haproxy/server_state.py)

All of them block on the stats socket: call them from a thread in asyncio code.
"""

from __future__ import annotations

import logging
import time

from ... import files
from ...model.config import Config, RealServerState
from ...paths import StatePaths
from . import server_state
from .plan import Operation, OpKind
from .runtime import RuntimeAPI, RuntimeAPIError, check_reply

log = logging.getLogger("pacslb.controller")

DELETE_WAIT = 10.0  # seconds a removed real server may take to finish its connections before a reload is used


class OperationFailed(Exception):
    """A runtime operation was refused or did not finish; `done` lists the operations carried out before it."""

    def __init__(self, operation: Operation, reason: str, done: list[Operation]) -> None:
        self.operation = operation
        self.done = done
        super().__init__(f"{operation}: {reason}")


ADMIN = server_state.ADMIN_OF


def execute(api: RuntimeAPI, operations: list[Operation], delete_wait: float = DELETE_WAIT) -> None:
    """Carry out the operations in order. Raises OperationFailed at the first one HAProxy refuses."""
    done: list[Operation] = []
    for op in operations:
        try:
            _execute_one(api, op, delete_wait)
        except (RuntimeAPIError, ValueError, TimeoutError) as exc:
            raise OperationFailed(op, str(exc), done) from None
        done.append(op)


def _execute_one(api: RuntimeAPI, op: Operation, delete_wait: float) -> None:
    b, s = op.service, op.real_server
    if op.kind is OpKind.STATE:
        assert op.state is not None
        if op.state is RealServerState.ONLINE and op.weight is not None:
            api.set_server_weight(b, s, op.weight)  # online restores the configured weight
        api.set_server_state(b, s, ADMIN[op.state])  # type: ignore[arg-type]
    elif op.kind is OpKind.WEIGHT:
        assert op.weight is not None
        api.set_server_weight(b, s, op.weight)
    elif op.kind is OpKind.ADDRESS:
        assert op.address is not None
        api.set_server_addr(b, s, op.address, op.port)
    elif op.kind is OpKind.ADD:
        assert op.address is not None
        api.add_server(b, s, op.address, op.options)
        state = op.state or RealServerState.ONLINE
        if state is not RealServerState.HALT:
            if "check" in op.options:
                api.enable_health(b, s)
            if "agent-check" in op.options:  # the appliance's checks or a feedback agent (health/service.py)
                api.enable_agent(b, s)
            if op.weight is not None and state is RealServerState.DRAIN:
                api.set_server_weight(b, s, op.weight)  # drained with its configured weight, as after a reload
            api.set_server_state(b, s, ADMIN[state])  # type: ignore[arg-type]
    elif op.kind is OpKind.DELETE:
        _delete(api, b, s, delete_wait)


def _delete(api: RuntimeAPI, backend: str, server: str, wait: float) -> None:
    """Drain, then maint (no new request; idle connections are closed), then `del server` once the last
    connection has ended. HAProxy refuses `del server` while connections remain: retry until `wait`."""
    api.set_server_state(backend, server, "drain")
    api.set_server_state(backend, server, "maint")
    deadline = time.monotonic() + wait
    pause = 0.02
    while True:
        try:
            api.del_server(backend, server)
            return
        except RuntimeAPIError as exc:
            if "No such server" in str(exc):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"its connections did not end within {wait:g}s ({exc})") from None
        time.sleep(pause)
        pause = min(pause * 2, 0.25)


def converge(api: RuntimeAPI, config: Config) -> server_state.Drift:
    """Set each real server's admin state and weight to the model's. Returns the drift found (before fixing);
    `needs_reload` when servers are missing or extra, which only a reload fixes."""
    found = server_state.drift(api.show_servers_state(), server_state.desired_servers(config))
    for command in found.commands:
        check_reply(command, api.command(command))
        log.info("runtime state set to the model's: %s", command)
    return found


def save_server_state(paths: StatePaths, config: Config, timeout: float = 10.0) -> bool:
    """Write the server-state file for the next worker from `show servers state`, with the model's states
    and weights. Returns False, leaving the file alone, when the stats socket does not answer."""
    try:
        text = RuntimeAPI(paths.haproxy_admin_socket, timeout=timeout).command("show servers state")
    except RuntimeAPIError:
        return False
    if not text.startswith("1\n"):
        return False
    files.atomic_write(paths.haproxy_server_state, server_state.rewrite(text, server_state.desired_servers(config)))
    return True


def rewrite_saved_state(paths: StatePaths, config: Config) -> None:
    """Make the server-state file already on disk agree with the model (before HAProxy starts again on it)."""
    text = files.read_text(paths.haproxy_server_state)
    if text:
        files.atomic_write(paths.haproxy_server_state, server_state.rewrite(text, server_state.desired_servers(config)))
