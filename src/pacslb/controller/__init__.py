"""The controller's own surface: its API on a Unix socket, the CLI's client of it, the lock of a state
directory, and the live-state model.

- `api`, `api_changes`: the HTTP API on the controller's Unix socket; `client`: the CLI's side of it
- `status`: the live-state model in the field's words, built by a pure function from HAProxy's stats;
  `observe` asks HAProxy and builds it
- `lock`: one controller per state directory

The appliance itself is built in pacslb.appliance (the composition root), changes go through
pacslb.change, and the engines are pacslb.engines.
"""

API_PREFIX = "/api/v1"
