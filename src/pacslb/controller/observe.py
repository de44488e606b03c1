"""Reading the live state from HAProxy's stats socket into the status model (the I/O around `build_status`)."""

from __future__ import annotations

import time

from ..engines.haproxy.runtime import RuntimeAPI, RuntimeAPIError
from ..model import Config
from ..paths import StatePaths
from .status import ApplianceChecks, ApplianceStatus, ControllerStatus, EngineStatus, build_status


def observe(
    paths: StatePaths,
    config: Config,
    engine: EngineStatus,
    controller: ControllerStatus | None,
    checks: ApplianceChecks | None = None,
) -> ApplianceStatus:
    """Ask HAProxy's stats socket and put its answer in the status model (blocking); `checks` are the
    results of the checks the appliance runs itself."""
    rows = []
    if engine.running:
        try:
            rows = RuntimeAPI(paths.haproxy_admin_socket, timeout=3.0).show_stat()
        except RuntimeAPIError as exc:
            engine = engine.model_copy(update={"error": engine.error or str(exc)})
    return build_status(config, rows, engine, controller, checks, time.time())
