"""What of a configuration the cluster's nodes share, and what each keeps of its own (pure).

The node-local parts are those of an HA pair (`model.ha.NODE_LOCAL`: `ha`, `cluster`, `settings.management`,
`settings.files`) and, in a cluster, `settings.health.agent_port`: a port on the node's own loopback that HAProxy
asks, which nodes sharing one host (a test bed, containers) must each have of their own. Everything else is the
cluster's: one revision, the same on every node.
"""

from __future__ import annotations

from typing import Any

from ..model import Config
from ..model.ha import NODE_LOCAL, with_own_node_local, without_node_local
from ..model.secrets import revealed_dump

CLUSTER_NODE_LOCAL: tuple[str, ...] = (*NODE_LOCAL, "settings.health.agent_port")


def shared_data(config: Config) -> dict[str, Any]:
    """The configuration without its node-local parts (plain JSON data), secrets with their values."""
    return without_node_local(revealed_dump(config), CLUSTER_NODE_LOCAL)


def merge_own(received: dict[str, Any], own: Config) -> dict[str, Any]:
    """The cluster's configuration with this node's own node-local parts put back."""
    return with_own_node_local(received, revealed_dump(own), CLUSTER_NODE_LOCAL)
