"""`pacslb verify`: prove from the appliance itself that every virtual service, listener and rule reaches
the service it should (routes.py plans the requests, pure; runner.py sends them and reads HAProxy's counters)."""
