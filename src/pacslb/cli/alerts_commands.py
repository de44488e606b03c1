"""`pacslb alerts`: test (send a test alert to each receiver) and status (queues, sent, dropped per receiver).

Both ask the running controller (its Unix-socket API) when one runs on the state directory; without one, `test`
sends straight from the configuration file, and `status` has nothing to show.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from . import app
from .common import DEFAULT_CONFIG, ConfigOption, StateDirOption, load_or_exit, state_paths

alerts_app = typer.Typer(help="Alerts: send a test alert, show queues and counters per receiver.", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")

ReceiverOption = Annotated[str | None, typer.Option("--receiver", "-r", help="only the receiver of this name")]


def _controller(option: Path | None, method: str, path: str, params: dict[str, str] | None = None) -> dict[str, Any] | None:
    """The controller's answer, or None when no controller runs on the state directory."""
    import httpx

    from ..controller import API_PREFIX

    paths = state_paths(option)
    socket_path = paths.controller_socket
    if not socket_path.exists():
        return None
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(socket_path)), base_url="http://pacslb", timeout=60) as c:
            response = c.request(method, f"{API_PREFIX}/alerts{path}", params=params)
    except httpx.HTTPError:
        return None  # a socket left by a controller that is gone: do it here
    if response.status_code >= 400:
        detail = response.json().get("detail") if "json" in response.headers.get("content-type", "") else response.text
        print(f"error: {detail}", file=sys.stderr)
        raise typer.Exit(2 if response.status_code == 404 else 1)
    return response.json()


def _direct_test(config_file: Path, receiver: str | None) -> list[dict[str, Any]]:
    """Send a test alert from this process to the receivers of the configuration file."""
    from ..alerts import events
    from ..alerts.receivers import DeliveryError
    from ..alerts.service import deliver

    config = load_or_exit(config_file).config
    section = config.alerts
    chosen = [r for r in (section.receivers if section else []) if receiver is None or r.name == receiver]
    if receiver is not None and not chosen:
        known = ", ".join(r.name for r in section.receivers) if section else "none"
        print(f"error: no alert receiver called {receiver!r} in {config_file} (alerts.receivers: {known})", file=sys.stderr)
        raise typer.Exit(2)

    async def send(receiver) -> dict[str, Any]:
        import time

        try:
            await deliver(receiver, events.test_alert(receiver.name, time.time()), _node())
        except DeliveryError as exc:
            return {"receiver": receiver.name, "ok": False, "error": str(exc)}
        return {"receiver": receiver.name, "ok": True, "error": None}

    async def send_all() -> list[dict[str, Any]]:  # at the same time: each is bounded by its own timeout
        return list(await asyncio.gather(*(send(r) for r in chosen)))

    return asyncio.run(send_all())


def _node() -> str:
    import socket

    return socket.gethostname()


@alerts_app.command()
def test(
    receiver: ReceiverOption = None,
    config_file: ConfigOption = DEFAULT_CONFIG,
    state_dir_option: StateDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the results as JSON")] = False,
) -> None:
    """Send a test alert to every receiver (or one): through the running controller, or straight from the
    configuration file when none runs. Exit 1 when a receiver did not take it."""
    answer = _controller(state_dir_option, "POST", "/test", {"receiver": receiver} if receiver else None)
    via = "the running controller"
    if answer is None:
        results, via = _direct_test(config_file, receiver), str(config_file)
    else:
        results = answer["results"]
    if as_json:
        print(json.dumps({"via": via, "results": results}, indent=2))
    elif not results:
        print(f"no alert receivers configured ({via}): add them under alerts.receivers")
    for r in [] if as_json else results:
        print(f"{r['receiver']}: {'sent' if r['ok'] else 'FAILED: ' + str(r['error'])}")
    if any(not r["ok"] for r in results):
        raise typer.Exit(1)


def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if ts else "-"


@alerts_app.command()
def status(
    state_dir_option: StateDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the whole answer as JSON")] = False,
) -> None:
    """Queues and counters per receiver (sent, dropped, failed attempts, last error) and the last alerts."""
    answer = _controller(state_dir_option, "GET", "")
    if answer is None:
        print("error: no controller runs on this state directory; start the appliance with 'pacslb up'", file=sys.stderr)
        raise typer.Exit(1)
    if as_json:
        print(json.dumps(answer, indent=2))
        return
    print(f"{'receiver':<20} {'type':<8} {'queued':>6} {'sent':>6} {'dropped':>7} {'failed':>6}  last sent / last error")
    for r in answer["receivers"]:
        print(f"{r['name']:<20} {r['type']:<8} {r['queued']:>6} {r['sent']:>6} {r['dropped']:>7} {r['failed_attempts']:>6}  "
              f"{_when(r['last_sent_at'])}{' / ' + r['last_error'] if r['last_error'] else ''}")  # fmt: skip
    if not answer["receivers"]:
        print("(no receivers: add them under alerts.receivers)")
    if answer["held_by_flap_grouping"]:
        print(f"{answer['held_by_flap_grouping']} changes held for flap summaries")
    for alert in answer["recent"][:10]:
        print(f"{_when(alert['at'])}  {alert['severity']:<8} {alert['message']}")
