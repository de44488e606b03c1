"""`pacslb balance run`: the MLLP listener, the REST API and the periodic tick on one asyncio loop."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import uvicorn

from . import mllp
from .api import make_app
from .config import BalanceConfig
from .service import BalanceService
from .store import Store

TICK_SECONDS = 30.0  # escalations and shift changes are minutes apart; a pull brings everything up to date anyway
UPS_SECONDS = 2.0  # how often pending UPS workitems are pushed (and failed ones tried again)


async def run(
    config: BalanceConfig, state_dir: Path, host: str, mllp_port: int, http_port: int, exit_after: float | None
) -> None:
    """Serve until stopped (or for `exit_after` seconds: a bounded life for tests and trials)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    store = Store(state_dir / "balance.sqlite")
    service = BalanceService(config, store)
    listener = await mllp.serve(service.handle_hl7, host, mllp_port)
    server = uvicorn.Server(uvicorn.Config(make_app(service), host=host, port=http_port, log_level="warning", lifespan="off"))
    web = asyncio.create_task(server.serve())

    async def ticking() -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            service.tick()

    async def pushing() -> None:
        while True:
            await asyncio.sleep(UPS_SECONDS)
            await service.push_workitems()

    ticker = asyncio.create_task(ticking())
    pusher = asyncio.create_task(pushing()) if config.ups is not None else None
    while not server.started and not web.done():
        await asyncio.sleep(0.02)
    print(f"balance: HL7 MLLP on {host}:{mllp_port}, REST and page on http://{host}:{http_port}/", flush=True)
    try:
        if exit_after is not None:
            await asyncio.wait_for(asyncio.shield(web), exit_after)
        else:
            await web
    except TimeoutError:
        print(f"balance: stopping after {exit_after:g} s (--exit-after)", file=sys.stderr, flush=True)
    finally:
        server.should_exit = True
        ticker.cancel()
        if pusher is not None:
            pusher.cancel()
        listener.close()
        await asyncio.gather(web, return_exceptions=True)
        store.close()
