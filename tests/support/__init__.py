"""What the tests share (importable as `support` with tests/ on sys.path: pyproject's pythonpath does it).

  support.wait         wait_until(predicate, timeout, interval, what): the one polling helper
  support.net          free_port, loopback_host, accepts, http_get (loopback only)
  support.processes    pid_gone, processes_of, haproxy_masters, kill_pids, stop_group (by PID, never by name)
  support.realservers  TinyHTTPServer: a real HTTP server on loopback answering its name (EchoHTTPServer: and
                       the path and Host header it received)
  support.configs      configuration builders (real_server, service, config_text, http_service_config, ...)
  support.appliance    the appliance harness: `pacslb up` on a state directory, its API, its end by PID
  support.netns        network-namespace beds (Lab; the layer 4 bed), without pytest: bench/ can import it
  support.accounts     system_user(purpose): a local non-root user for the length of a test
  support.true_pacs    the simulated True PACS services and an appliance on their plan (true_pacs_appliance)

Directory-specific helpers stay beside their tests (e2e/changes_support.py,
api/api_support.py, netns/ha_support.py, health/health_peers.py) and build on this package.
"""
