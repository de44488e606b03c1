"""The appliance controller: runs the engines on the configuration, supervises them, serves the API.

- `appliance.Controller`: startup (render, check, adopt or start, swap), supervision, shutdown
- `status`: the live-state model in the field's words, built by a pure function from HAProxy's stats;
  `observe` asks HAProxy and builds it
- `api`: the HTTP API on the controller's Unix socket; `client`: the CLI's side of it
- `lock`: one controller per state directory
"""

API_PREFIX = "/api/v1"
