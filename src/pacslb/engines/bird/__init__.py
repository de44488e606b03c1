"""BIRD 2: a cluster node announces the VIPs it can serve over BGP with BFD (docs/cluster.md, Routing)."""
