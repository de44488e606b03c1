"""`show table` parsing (engines/haproxy/stick_tables.py) and which services have a table to clear (persistence.py)."""

import pytest

from pacslb.engines.haproxy.runtime import RuntimeAPIError
from pacslb.engines.haproxy.stick_tables import parse_show_table, show_table
from pacslb.model import load_text
from pacslb.persistence import Cleared, ClearRefused, persistence_table

SHOW = """# table: sticky, type: ip, size:100000, used:2
0x55d0c1a0a0e0: key=127.0.0.61 use=0 exp=1799416 shard=0 server_id=1 server_key=rs1
0x55d0c1a0a1f0: key=127.0.0.62 use=1 exp=1799999 shard=0 server_id=2 server_key=rs2

"""


def test_show_table_header_and_keys():
    table = parse_show_table("sticky", SHOW)
    assert (table.type, table.size, table.used, table.keys) == ("ip", 100000, 2, ("127.0.0.61", "127.0.0.62"))
    assert parse_show_table("sticky", "# table: sticky, type: ip, size:10, used:0\n\n").keys == ()


def test_a_missing_table_is_an_error_not_an_empty_one():
    with pytest.raises(RuntimeAPIError, match="no stick table 'other'"):
        parse_show_table("other", "Unknown table\n")
    with pytest.raises(RuntimeAPIError):
        parse_show_table("other", SHOW)  # another table's answer
    with pytest.raises(ValueError):
        show_table(None, "a b")  # type: ignore[arg-type]  - refused before any socket


CONFIG = """
version: 1
virtual_services:
  - name: ip
    mode: layer7-tcp
    listen: [{address: 192.0.2.1, port: 104}]
    persistence: {type: source-ip}
    real_servers: [{name: a, address: 192.0.2.2, port: 104}]
  - name: cookie
    mode: layer7-http
    listen: [{address: 192.0.2.1, port: 80}]
    persistence: {type: http-cookie}
    real_servers: [{name: a, address: 192.0.2.2, port: 80}]
  - name: none
    mode: layer7-http
    listen: [{address: 192.0.2.1, port: 81}]
    real_servers: [{name: a, address: 192.0.2.2, port: 80}]
  - name: l4
    mode: layer4-nat
    listen: [{address: 192.0.2.1, port: 11112}]
    persistence: {type: source-ip}
    real_servers: [{name: a, address: 192.0.2.2, port: 11112}]
"""


@pytest.mark.parametrize(
    "service, status, says",
    [
        ("nosuch", 404, "no virtual service is called 'nosuch'"),
        ("none", 409, "has no persistence"),
        ("cookie", 409, "cookie the clients hold"),
        ("l4", 409, "only Layer 7 persistence tables"),
    ],
)
def test_services_without_a_table_say_why(service, status, says):
    loaded = load_text(CONFIG)
    assert loaded.ok, loaded.problems
    with pytest.raises(ClearRefused) as refused:
        persistence_table(loaded.config, service)
    assert refused.value.status == status and says in refused.value.message


def test_the_table_is_the_service_s_backend_and_the_message_counts():
    assert persistence_table(load_text(CONFIG).config, "ip") == "ip"
    assert Cleared("ip", "ip", 1, 0).message.endswith("1 entry removed")
    assert Cleared("ip", "ip", 3, 1).message.endswith("3 entries removed, 1 kept while an open connection uses them")
