"""What of a configuration the cluster's nodes share, and what each keeps of its own (pure).

The node-local parts are those of an HA pair (`model.ha.NODE_LOCAL`: `ha`, `cluster`, `settings.management`,
`settings.files`) and, in a cluster, `settings.health.agent_port`: a port on the node's own loopback that HAProxy
asks, which nodes sharing one host (a test bed, containers) must each have of their own. Everything else is the
cluster's: one revision, the same on every node.
"""

from __future__ import annotations

import json
from typing import Any

from ..model import Config
from ..model.ha import NODE_LOCAL
from ..model.secrets import revealed_dump

CLUSTER_NODE_LOCAL: tuple[str, ...] = (*NODE_LOCAL, "settings.health.agent_port")


def shared_data(config: Config) -> dict[str, Any]:
    """The configuration without its node-local parts (plain JSON data), secrets with their values."""
    data = revealed_dump(config)
    for dotted in CLUSTER_NODE_LOCAL:
        *parents, last = dotted.split(".")
        node: Any = data
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return data


def merge_own(received: dict[str, Any], own: Config) -> dict[str, Any]:
    """The cluster's configuration with this node's own node-local parts put back."""
    merged = json.loads(json.dumps(received))
    own_data = revealed_dump(own)
    for dotted in CLUSTER_NODE_LOCAL:
        *parents, last = dotted.split(".")
        src: Any = own_data
        dst: Any = merged
        for part in parents:
            src = src.get(part) if isinstance(src, dict) else None
            dst = dst.setdefault(part, {}) if isinstance(dst, dict) else None
        if isinstance(dst, dict):
            dst.pop(last, None)
            if isinstance(src, dict) and src.get(last) is not None:
                dst[last] = src[last]
    return merged
