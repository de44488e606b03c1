"""Command line: run the simulated services of a spec until SIGTERM or SIGINT.

    python -m pacslb.demo.services --spec FILE [--control-host H] [--control-port P]
                                   [--max-lifetime SECONDS] [--exit-on-stdin-eof]

(``python -m pacslb.demo`` is the same.) Standard output carries JSON lines only:

    {"event": "ready", "pid": ..., "control": {"host", "port", "url"}, "services": [...]}
    {"event": "error", "message": "..."}      (then exit status 1: bad spec, bind failure)
    {"event": "stopped", "reason": "SIGTERM"}  (then exit status 0)

A parent waits for the first line. Logs go to standard error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import threading
from dataclasses import replace

from .server import DemoServices
from .spec import DemoSpec, SpecError, load_spec

log = logging.getLogger("pacslb.demo")


def _emit(obj: dict) -> None:
    try:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, ValueError, OSError):
        pass


async def run(
    spec: DemoSpec,
    *,
    max_lifetime: float | None = None,
    exit_on_stdin_eof: bool = False,
) -> int:
    loop = asyncio.get_running_loop()
    app = DemoServices(spec)
    try:
        await app.start()
    except OSError as e:
        _emit({"event": "error", "message": f"cannot listen: {e}"})
        log.error("cannot listen: %s", e)
        await app.stop()
        return 1
    done = asyncio.Event()
    reason = {"why": "shutdown request"}

    def finish(why: str) -> None:
        if not done.is_set():
            reason["why"] = why
            done.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, finish, sig.name)
    if max_lifetime:
        loop.call_later(max_lifetime, finish, "max lifetime")
    if exit_on_stdin_eof:

        def watch_stdin() -> None:
            try:
                while os.read(sys.stdin.fileno(), 4096):
                    pass
            except OSError:
                pass
            loop.call_soon_threadsafe(finish, "stdin closed")

        threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()

    async def on_shutdown_request() -> None:
        await app.shutdown_requested.wait()
        finish("shutdown request")

    shutdown_task = asyncio.create_task(on_shutdown_request())
    info = app.ready_info()
    info["pid"] = os.getpid()
    _emit(info)
    await done.wait()
    shutdown_task.cancel()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)
    await app.stop()
    _emit({"event": "stopped", "reason": reason["why"]})
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m pacslb.demo.services",
        description="Simulated True PACS backend services (HTTP/HTTPS and AMQP) on loopback.",
    )
    ap.add_argument("--spec", required=True, help="the JSON spec file")
    ap.add_argument("--control-host", help="control endpoint address (overrides the spec)")
    ap.add_argument("--control-port", type=int, help="control endpoint port (overrides the spec)")
    ap.add_argument("--max-lifetime", type=float, default=None, help="exit after this many seconds")
    ap.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="exit when standard input closes (the parent died); stdin must be a pipe",
    )
    ap.add_argument("--log-level", default="WARNING")
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s pacslb-demo %(levelname)s %(message)s",
    )
    try:
        spec = load_spec(args.spec)
        if args.control_host is not None:
            spec = replace(spec, control_host=args.control_host)
        if args.control_port is not None:
            spec = replace(spec, control_port=args.control_port)
        spec.validate()
    except (SpecError, OSError) as e:
        _emit({"event": "error", "message": str(e)})
        print(f"pacslb-demo: {e}", file=sys.stderr)
        return 1
    try:
        DemoServices(spec)  # loads TLS material: fail early with a clear message
    except (OSError, ValueError) as e:
        _emit({"event": "error", "message": f"TLS material: {e}"})
        print(f"pacslb-demo: TLS material: {e}", file=sys.stderr)
        return 1
    return asyncio.run(run(spec, max_lifetime=args.max_lifetime, exit_on_stdin_eof=args.exit_on_stdin_eof))


if __name__ == "__main__":
    sys.exit(main())
