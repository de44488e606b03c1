"""The CLI's side of the controller API: HTTP over the controller's Unix socket."""

from __future__ import annotations

from typing import Any

import httpx

from ..paths import StatePaths
from . import API_PREFIX


class ControllerUnavailable(Exception):
    """No controller answers on this state directory's socket."""


class ControllerError(ControllerUnavailable):
    """The controller answered, with an error status: it runs (say so, never "no controller answers")."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _said(response: httpx.Response) -> str:
    """What an error answer says: its `message` (and `problems`) when it is the controller's JSON, else its text."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        problems = [f"{p.get('path')}: {p.get('message')}" for p in body.get("problems") or [] if isinstance(p, dict)]
        return "; ".join([body["message"], *problems])[:2000]
    return response.text[:500]


class ControllerClient:
    def __init__(self, paths: StatePaths, timeout: float = 10.0) -> None:
        self.paths = paths
        self.timeout = timeout

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None, params: dict[str, Any] | None = None
    ) -> httpx.Response:
        socket_path = self.paths.controller_socket
        if not socket_path.exists():
            raise ControllerUnavailable(f"no controller socket at {socket_path}")
        transport = httpx.HTTPTransport(uds=str(socket_path))
        try:
            with httpx.Client(transport=transport, base_url="http://pacslb", timeout=self.timeout) as client:
                return client.request(method, f"{API_PREFIX}{path}", json=body, params=params)
        except (httpx.ConnectError, httpx.RemoteProtocolError, FileNotFoundError, ConnectionRefusedError) as exc:
            raise ControllerUnavailable(f"the controller does not answer on {socket_path}: {exc}") from None
        except httpx.TimeoutException:
            raise ControllerUnavailable(f"the controller did not answer on {socket_path} within {self.timeout:g}s") from None

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        if response.status_code >= 400:
            raise ControllerError(
                response.status_code,
                f"the controller answered {response.status_code} to {response.request.method} {response.request.url.path}: "
                f"{_said(response)}",
            )
        return response.json()

    def status(self) -> dict[str, Any]:
        return self._json(self._request("GET", "/status"))

    def health(self) -> tuple[bool, dict[str, Any]]:
        response = self._request("GET", "/health")
        return response.status_code == 200, response.json()

    def stop(self) -> dict[str, Any]:
        return self._json(self._request("POST", "/stop"))

    # --- changes (controller/api_changes.py): the answer's body whatever its status, 200, 404, 409 or 422

    def _change(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self._request("POST", path, body)
        if response.status_code not in (200, 404, 409, 422) or "outcome" not in response.text:
            self._json(response)  # raises with the status and text
        return response.json()

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._change("/apply", body)

    def set_real_server_state(self, service: str, real_server: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._change(f"/virtual-services/{service}/real-servers/{real_server}/state", body)

    def set_real_server_weight(self, service: str, real_server: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._change(f"/virtual-services/{service}/real-servers/{real_server}/weight", body)

    def rollback(self, rev_id: int, body: dict[str, Any]) -> dict[str, Any]:
        return self._change(f"/revisions/{rev_id}/rollback", body)
