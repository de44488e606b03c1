"""Form values <-> model data (pacslb.web.forms): pure; the model itself judges the values."""

from pacslb.model import validate_data
from pacslb.web import forms


def test_health_check_data_keeps_only_the_fields_of_its_type():
    form = {"type": "http", "interval": "2s", "timeout": "", "rise": "3", "path": "/health", "expect_status": "200, 204",
            "calling_ae": "LEFTOVER", "script": "/x"}  # fmt: skip
    assert forms.health_check_data(form) == {"type": "http", "interval": "2s", "rise": "3", "path": "/health",
                                             "expect_status": ["200", "204"]}  # fmt: skip
    assert forms.health_check_data({"type": "none", "interval": "5s"}) == {"type": "none"}
    assert forms.health_check_data({"type": "dicom-echo", "called_ae": "ARCHIVE"}) == {
        "type": "dicom-echo",
        "called_ae": "ARCHIVE",
    }


def test_addresses():
    assert forms.parse_address("10.0.0.1:8443") == {"address": "10.0.0.1", "port": "8443"}
    assert forms.parse_address("[::1]:443") == {"address": "::1", "port": "443"}
    assert forms.parse_address("10.0.0.1") == {"address": "10.0.0.1"}
    assert forms.format_address({"address": "::1", "port": 443}) == "[::1]:443"
    assert forms.split_list(" a, b  c,,") == ["a", "b", "c"]


def test_a_virtual_service_round_trips_through_its_form():
    data = {"version": 1, "virtual_services": [
        {"name": "web", "mode": "layer7-http", "listen": [{"address": "127.0.0.1", "port": 8443}],
         "persistence": {"type": "source-ip", "timeout": "10m", "table_size": 5000},
         "fallback": {"address": "127.0.0.9", "port": 80}, "health_check": {"type": "none"},
         "real_servers": [{"name": "rs1", "address": "127.0.0.2", "port": 443, "backup": True}]}]}  # fmt: skip
    config = validate_data(data).config
    vs = config.virtual_services[0].model_dump(mode="json")
    values = forms.values_of(vs, forms.VIRTUAL_SERVICE_FIELDS)
    assert values["listen"] == "127.0.0.1:8443" and values["fallback"] == "127.0.0.9:80"
    assert values["persistence.type"] == "source-ip" and values["persistence.timeout"] == "10m"
    back = forms.virtual_service_data(values, vs)
    assert back["persistence"]["table_size"] == 5000  # settings the form does not show stay
    again = validate_data({"version": 1, "virtual_services": [back]})
    assert again.ok, again.problems
    assert again.config.virtual_services[0] == config.virtual_services[0]


def test_changing_the_persistence_type_drops_the_old_settings():
    base = {"name": "web", "mode": "layer7-http", "persistence": {"type": "source-ip", "timeout": "10m", "table_size": 5}}
    form = {"name": "web", "mode": "layer7-http", "persistence.type": "http-cookie", "persistence.timeout": "10m",
            "persistence.cookie_name": "SRV", "listen": "", "tls.certificates": ""}  # fmt: skip
    assert forms.virtual_service_data(form, base)["persistence"] == {"type": "http-cookie", "cookie_name": "SRV"}


def test_real_server_checkboxes_and_empty_fields():
    base = {"name": "rs1", "address": "127.0.0.2", "port": 443, "backup": True, "weight": 50}
    data = forms.real_server_data({"name": "rs1", "address": "127.0.0.2", "port": "", "weight": "60"}, base)
    assert data == {"name": "rs1", "address": "127.0.0.2", "backup": False, "weight": "60", "encrypted": False}
    assert forms.real_server_data({"name": "a", "address": "b", "backup": "on"}, {})["backup"] is True


def test_a_rule_has_one_action_and_keeps_its_header_conditions():
    base = {"name": "r", "match": {"path_begins": ["/a"], "header": [{"name": "X-A"}]}, "use_service": "s"}
    form = {"name": "r", "match.path_begins": "/a, /b", "match.host": "", "action": "deny", "deny.status": "404",
            "use_service": "s", "redirect.location": "https://x"}  # fmt: skip
    data = forms.rule_data(form, base)
    assert data == {"name": "r", "match": {"path_begins": ["/a", "/b"], "header": [{"name": "X-A"}]},
                    "deny": {"status": 404}}  # fmt: skip
    values = forms.values_of(data, forms.RULE_FIELDS)
    assert values["action"] == "deny" and values["match.path_begins"] == "/a, /b" and values["deny.status"] == "404"


def test_an_hl7_message_round_trips_through_its_text_area():
    from pacslb.model.config import HL7Check

    segments = ["MSH|^~\\&|PACSLB||RIS||20260101||NMQ^N01|1|P|2.5", "NCK|20260101"]
    shown = forms.values_of({"type": "hl7", "message": segments}, forms.HEALTH_CHECK_FIELDS)
    assert shown["message"] == "\n".join(segments)  # a segment a line, not one comma-joined line
    data = forms.health_check_data({"type": "hl7", "message": shown["message"]})
    assert HL7Check.model_validate(data).message == segments
