"""The active-active cluster (issue 20, docs/cluster.md): which VIPs this node announces over BGP (announce.py),
and the cluster's state in etcd: configuration, revisions, membership, drain (state.py and its neighbours).
The engines it drives (BIRD, etcd) are under engines/ like every other; this package holds the decisions."""
