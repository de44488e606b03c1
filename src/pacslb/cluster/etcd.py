"""A small etcd v3 client over etcd's JSON gateway (etcd 3.4: POST /v3/kv/range, /v3/kv/put, /v3/kv/txn,
/v3/kv/deleterange, /v3/lease/grant, /v3/lease/keepalive, /v3/lease/revoke, /v3/watch, and the membership's
/v3/cluster/member/list, /v3/cluster/member/add, /v3/cluster/member/remove, /v3/maintenance/status), with httpx.

Why not python-etcd3: it is unmaintained (no release since 2019, pinned to old grpcio and protobuf that no longer
build on current Python), and it would bring grpcio, a large native dependency, for six calls. The gateway is part
of every etcd 3.4 member, speaks JSON with base64 keys, and httpx is already a dependency of pacslb.

With `cluster.etcd.tls` the client speaks https: it trusts only the cluster CA, checks that each member's
certificate is valid for the member's address, and shows the node's own certificate (the members ask every client
for one: `client-cert-auth`). `ssl_context` builds that once; a file that cannot be read is an `EtcdError`.

The client knows every member's client URL and sends each request to the one that last answered, moving on to the
next when a member cannot be reached (a member killed, a partition). etcd itself refuses what it cannot commit
without quorum ("etcdserver: request timed out"): that is an `EtcdError` too, said plainly.
"""

from __future__ import annotations

import json
import logging
import ssl
from typing import Any, AsyncIterator

import httpx

from ..engines.etcd.render import TLSFiles
from .keys import b64, decode_kvs, prefix_end

log = logging.getLogger("pacslb.cluster")


# what a request that did not get through raises: httpx's errors and, over TLS, the raw SSLError of an alert the
# member sends after the handshake (a refused client certificate reaches the client on its first read, not always
# wrapped by httpx)
TRANSPORT_ERRORS = (httpx.HTTPError, ssl.SSLError)


class EtcdError(Exception):
    """etcd could not be reached, or refused or failed a request (no quorum, a timeout).

    `uncertain`: a member may have taken the request before it failed (no answer in time, or etcd's own "request
    timed out"): a write may still be committed once quorum returns. Without it, no member took the request."""

    def __init__(self, message: str, uncertain: bool = False) -> None:
        super().__init__(message)
        self.uncertain = uncertain


def ssl_context(tls: TLSFiles) -> ssl.SSLContext:
    """TLS towards the cluster's members: the cluster CA alone is trusted, the member's certificate must be valid
    for the address in its URL (an IP SAN), and the node's certificate is shown to the member."""
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.ca)
        context.load_cert_chain(tls.cert, tls.key)
    except (OSError, ssl.SSLError) as exc:
        raise EtcdError(f"etcd's TLS files cannot be used ({tls.ca}, {tls.cert}, {tls.key}): {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # what etcd 3.4 accepts at least
    return context


class EtcdClient:
    def __init__(self, endpoints: list[str], timeout: float = 2.0, tls: TLSFiles | None = None) -> None:
        if not endpoints:
            raise ValueError("an etcd client needs at least one endpoint")
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self._current = 0
        verify: ssl.SSLContext | bool = ssl_context(tls) if tls is not None else True
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=min(timeout, 1.0)), verify=verify)

    async def close(self) -> None:
        await self._http.aclose()

    def _order(self) -> list[str]:
        n = len(self.endpoints)
        return [self.endpoints[(self._current + i) % n] for i in range(n)]

    async def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST `body` to `path` on the first member that answers; the answer's JSON, or EtcdError."""
        failures: list[str] = []
        uncertain = False
        for i, endpoint in enumerate(self._order()):
            try:
                response = await self._http.post(endpoint + path, json=body)
            except TRANSPORT_ERRORS as exc:
                failures.append(f"{endpoint}: {type(exc).__name__} {exc}".strip())
                # sent, and no answer: the member may have taken it (connect errors mean it never got there)
                uncertain |= not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
                continue
            try:
                answer = response.json()
            except ValueError:
                answer = {"error": response.text[:300]}
            if response.status_code >= 400 or "error" in answer:
                message = str(answer.get("error") or answer.get("message") or response.text[:300])
                if response.status_code == 503 or "timed out" in message or "leader" in message:
                    failures.append(f"{endpoint}: {message}")  # this member has no quorum or no leader: try another
                    uncertain |= "timed out" in message  # proposed, not committed in time: it may still be
                    continue
                raise EtcdError(f"etcd refused {path}: {message}")
            self._current = (self._current + i) % len(self.endpoints)
            return answer
        raise EtcdError("etcd cannot be reached or has no quorum (" + "; ".join(failures) + ")", uncertain)

    # --- keys ---------------------------------------------------------------------------------------------

    async def get(self, key: str) -> tuple[bytes | None, int]:
        """The value of `key` (None: absent) and the store's revision at the time of reading."""
        answer = await self.call("/v3/kv/range", {"key": b64(key)})
        values = decode_kvs(answer)
        return values.get(key), int(answer.get("header", {}).get("revision", 0))

    async def get_prefix(self, prefix: str) -> tuple[dict[str, bytes], int]:
        answer = await self.call("/v3/kv/range", {"key": b64(prefix), "range_end": prefix_end(prefix)})
        return decode_kvs(answer), int(answer.get("header", {}).get("revision", 0))

    async def put(self, key: str, value: str, lease: int | None = None) -> None:
        body: dict[str, Any] = {"key": b64(key), "value": b64(value)}
        if lease:
            body["lease"] = str(lease)
        await self.call("/v3/kv/put", body)

    async def delete(self, key: str) -> None:
        await self.call("/v3/kv/deleterange", {"key": b64(key)})

    async def txn(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self.call("/v3/kv/txn", body)

    # --- leases -------------------------------------------------------------------------------------------

    async def grant(self, ttl: int) -> int:
        answer = await self.call("/v3/lease/grant", {"TTL": str(ttl)})
        return int(answer["ID"])

    async def keepalive(self, lease: int) -> int:
        """Renew `lease`; its remaining TTL (0: it had expired, a new one is needed)."""
        answer = await self.call("/v3/lease/keepalive", {"ID": str(lease)})
        return int((answer.get("result") or {}).get("TTL") or 0)

    async def revoke(self, lease: int) -> None:
        await self.call("/v3/lease/revoke", {"ID": str(lease)})

    # --- the membership (cluster/members.py) -------------------------------------------------------------

    async def member_list(self) -> list[dict[str, Any]]:
        """etcd's members as the gateway says them: `ID` (a decimal string), `name` and `clientURLs` (absent for a
        member added and not started yet), `peerURLs`. etcd 3.4 answers it from the member asked, without quorum."""
        answer = await self.call("/v3/cluster/member/list", {})
        return list(answer.get("members") or [])

    async def member_add(self, peer_urls: list[str]) -> tuple[int, list[dict[str, Any]]]:
        """Add a member that will listen on `peer_urls`: its ID and the membership after it (takes quorum)."""
        answer = await self.call("/v3/cluster/member/add", {"peerURLs": list(peer_urls)})
        return int(answer["member"]["ID"]), list(answer.get("members") or [])

    async def member_remove(self, member_id: int) -> None:
        """Remove member `member_id` (takes quorum; etcd refuses a removal that would leave too few started members)."""
        await self.call("/v3/cluster/member/remove", {"ID": str(member_id)})

    async def leader(self) -> int:
        """The ID of the leader as the member asked knows it (0: it knows none)."""
        answer = await self.call("/v3/maintenance/status", {})
        return int(answer.get("leader") or 0)

    # --- watch --------------------------------------------------------------------------------------------

    async def watch_prefix(self, prefix: str, start_revision: int) -> AsyncIterator[tuple[str, str, bytes]]:
        """Every change under `prefix` from `start_revision` on, as (PUT|DELETE, key, value), until the stream ends
        (the member stopped, a timeout of the connection): then EtcdError, and the caller reads again and watches anew."""
        body = {"create_request": {"key": b64(prefix), "range_end": prefix_end(prefix), "start_revision": str(start_revision)}}
        failures: list[str] = []
        for endpoint in self._order():
            streamed = False
            try:
                async with self._http.stream("POST", endpoint + "/v3/watch", json=body,
                                             timeout=httpx.Timeout(self.timeout, read=None)) as response:  # fmt: skip
                    if response.status_code >= 400:
                        failures.append(f"{endpoint}: HTTP {response.status_code}")
                        continue
                    async for line in response.aiter_lines():
                        if not line.strip():
                            continue
                        message = json.loads(line)
                        result = message.get("result") or {}
                        if "error" in message or result.get("canceled"):
                            raise EtcdError(f"the watch ended: {message.get('error') or result.get('cancel_reason')}")
                        streamed = True
                        for event in result.get("events") or []:
                            kv = event.get("kv") or {}
                            key = decode_kvs({"kvs": [kv]})
                            for name, value in key.items():
                                yield event.get("type", "PUT"), name, value
                    raise EtcdError(f"the watch on {endpoint} ended (the member stopped or closed the stream)")
            except TRANSPORT_ERRORS as exc:
                if streamed:  # events may have been missed: the caller reads the state again
                    raise EtcdError(f"the watch on {endpoint} broke: {type(exc).__name__} {exc}") from None
                failures.append(f"{endpoint}: {type(exc).__name__} {exc}".strip())
                continue
        raise EtcdError("no etcd member takes the watch (" + "; ".join(failures) + ")")
