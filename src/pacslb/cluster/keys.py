"""Where the cluster's state lies in etcd, and the requests that change it (pure: no I/O).

Every key is under /pacslb/<cluster name>/:

    revision            the revision counter: "N", the number of the latest configuration (absent: none yet)
    config              the latest configuration: {"revision", "config" (shared part), "digest", "author", "node",
                        "message", "at"}; written in the same transaction as `revision`
    revisions/<N>       every configuration since, kept for the last KEEP_REVISIONS (history, `pacslb cluster status`)
    members/<node>      one per running node, bound to its lease (gone when its controller stops renewing it):
                        {"name", "address", "healthy", "health", "revision", "error", "drained", "left", "at",
                         "vips", "sessions" (BGP and BFD, sessions.py)}
    drain/<node>        present: the node is drained (its VIPs withdrawn); written by `pacslb cluster drain NODE`
    left/<node>         present: the node left the cluster (`pacslb cluster leave`); it takes no revisions

A new revision is one etcd transaction: compare `revision` with the number the writer runs, then put `revision`,
`config` and `revisions/<N+1>`. Two nodes changing at once both compare against the same number; etcd applies
transactions one at a time, so exactly one wins and the other finds the number moved (the 409 of a stale base).

etcd's JSON gateway (etcd 3.4: /v3/kv/range, /v3/kv/txn, /v3/watch, /v3/lease/*) takes keys and values base64.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

KEEP_REVISIONS = 100  # revisions/<N> older than the latest 100 are deleted by the transaction that writes a new one
MAX_VALUE_BYTES = 1_400_000  # etcd refuses requests over 1.5 MiB (--max-request-bytes); a configuration is refused before


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


def unb64(text: str | None) -> bytes:
    return base64.b64decode(text or "")


def prefix_end(key: str) -> str:
    """The range end of every key that starts with `key` (etcd's convention: the last byte plus one)."""
    raw = key.encode()
    return b64(raw[:-1] + bytes([raw[-1] + 1]))


class Keys:
    """The keys of one cluster."""

    def __init__(self, cluster: str) -> None:
        self.root = f"/pacslb/{cluster}/"
        self.revision = self.root + "revision"
        self.config = self.root + "config"
        self.revisions = self.root + "revisions/"
        self.members = self.root + "members/"
        self.drains = self.root + "drain/"
        self.lefts = self.root + "left/"

    def revision_of(self, n: int) -> str:
        return f"{self.revisions}{n:012d}"  # zero-padded: the keys sort as the numbers do

    def member(self, node: str) -> str:
        return self.members + node

    def drain(self, node: str) -> str:
        return self.drains + node

    def left(self, node: str) -> str:
        return self.lefts + node

    def node_of(self, key: str, prefix: str) -> str | None:
        """The node a member, drain or left key names, or None when `key` is not under `prefix`."""
        return key[len(prefix) :] if key.startswith(prefix) and len(key) > len(prefix) else None


def shared_digest(shared: dict[str, Any]) -> str:
    """SHA-256 of the shared part of a configuration (what every node runs the same)."""
    return hashlib.sha256(json.dumps(shared, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def new_revision_txn(keys: Keys, expected: int, record: dict[str, Any]) -> dict[str, Any]:
    """The transaction that writes revision `expected + 1` only if the counter still says `expected` (0: none yet).

    `record` is the value of `config` (its "revision" must be expected + 1)."""
    number = expected + 1
    assert record["revision"] == number
    if expected == 0:  # no revision yet: the counter must not exist (version 0)
        compare = {"key": b64(keys.revision), "target": "VERSION", "result": "EQUAL", "version": "0"}
    else:
        compare = {"key": b64(keys.revision), "target": "VALUE", "result": "EQUAL", "value": b64(str(expected))}
    value = json.dumps(record, sort_keys=True, separators=(",", ":"))
    success: list[dict[str, Any]] = [
        {"requestPut": {"key": b64(keys.revision), "value": b64(str(number))}},
        {"requestPut": {"key": b64(keys.config), "value": b64(value)}},
        {"requestPut": {"key": b64(keys.revision_of(number)), "value": b64(value)}},
    ]
    if number > KEEP_REVISIONS:
        success.append({"requestDeleteRange": {"key": b64(keys.revision_of(number - KEEP_REVISIONS))}})
    return {"compare": [compare], "success": success, "failure": [{"requestRange": {"key": b64(keys.revision)}}]}


def txn_outcome(answer: dict[str, Any]) -> tuple[bool, int | None]:
    """(succeeded, the counter's value when it failed) from the gateway's answer to `new_revision_txn`."""
    if answer.get("succeeded"):
        return True, None
    for response in answer.get("responses") or []:
        kvs = (response.get("response_range") or {}).get("kvs") or []
        if kvs:
            try:
                return False, int(unb64(kvs[0].get("value")).decode())
            except ValueError:
                return False, None
    return False, 0


def decode_kvs(answer: dict[str, Any]) -> dict[str, bytes]:
    """{key: value} of a range answer."""
    return {unb64(kv["key"]).decode(): unb64(kv.get("value")) for kv in answer.get("kvs") or []}


def decode_json(value: bytes) -> dict[str, Any] | None:
    """A JSON object stored as a value, or None when it is not one (a value written by hand)."""
    try:
        found = json.loads(value)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None
