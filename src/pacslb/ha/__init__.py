"""The HA pair: which node takes changes, the VRRP record, split brain, and the peer link that syncs the
configuration. keepalived itself is an engine (engines/keepalived); this package decides around it.

- `roles`: primary or secondary, promoted or not, and the secondary's refusal of direct changes
- `vrrp`: the VRRP transitions keepalived's notify script writes, with the reason of each
- `split_brain`: when both nodes were master, and what the rule decides (pure)
- `peer_link`: node certificates, mutual TLS, what is synced
- `pair`: the subsystem that runs all of it; `api`: its routes on the controller API
"""
