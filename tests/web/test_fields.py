"""Problems to form fields (pacslb.web.fields): pure."""

from pacslb.model import Problem, validate_data
from pacslb.web.fields import field_of, place_problems

HC = ["virtual_services[WFC_443].health_check", "virtual_services[3].health_check"]
HC_FIELDS = ["type", "interval", "timeout", "rise", "fall", "port", "expect_status"]


def test_paths_under_the_prefix_go_to_their_field():
    placed = place_problems(
        [
            Problem("virtual_services[WFC_443].health_check.rise", "must be at least 1"),
            Problem("virtual_services[WFC_443].health_check.expect_status[0]", "not a number"),
            Problem("virtual_services[3].health_check.interval", "not a duration"),
        ],
        HC, HC_FIELDS,
    )  # fmt: skip
    assert placed.by_field == {"rise": ["must be at least 1"], "expect_status": ["not a number"],
                               "interval": ["not a duration"]}  # fmt: skip
    assert placed.form == [] and placed.elsewhere == []


def test_the_object_itself_goes_above_the_form_and_other_objects_elsewhere():
    placed = place_problems(
        [
            Problem("virtual_services[WFC_443].health_check", "timeout must not be longer than interval"),
            Problem("virtual_services[WFC_443].health_check.unknown_thing", "unknown field"),
            Problem("virtual_services[WFC_4430].health_check.rise", "a service whose name starts the same"),
            Problem("virtual_services[other].real_servers[rs1].port", "bad port"),
            Problem("virtual_services[WFC_443].health_check.rise", "odd", severity="warning"),
        ],
        HC, HC_FIELDS,
    )  # fmt: skip
    assert placed.by_field == {}
    assert placed.form == ["timeout must not be longer than interval", "unknown_thing: unknown field"]
    assert placed.elsewhere == ["virtual_services[WFC_4430].health_check.rise: a service whose name starts the same",
                                "virtual_services[other].real_servers[rs1].port: bad port"]  # fmt: skip
    assert placed.warnings == ["warning: virtual_services[WFC_443].health_check.rise: odd"]


def test_dotted_fields_and_the_longest_match():
    fields = ["match", "match.path_begins", "persistence.type", "listen"]
    assert field_of("match.path_begins[0]", fields) == "match.path_begins"
    assert field_of("match.host", fields) == "match"
    assert field_of("listen[1].port", fields) == "listen"
    assert field_of("listening", fields) is None
    assert field_of("persistence", fields) is None


def test_real_model_problems_land_beside_the_health_check_fields():
    data = {"version": 1, "virtual_services": [{
        "name": "WFC_443", "mode": "layer7-http", "listen": [{"address": "127.0.0.1", "port": 8443}],
        "health_check": {"type": "http", "interval": "abc", "rise": "0", "fall": "x"},
        "real_servers": [{"name": "rs1", "address": "127.0.0.2", "port": 443}]}]}  # fmt: skip
    loaded = validate_data(data)
    assert not loaded.ok
    placed = place_problems(loaded.problems, ["virtual_services[WFC_443].health_check"], HC_FIELDS)
    assert set(placed.by_field) == {"interval", "rise", "fall"}, loaded.problems
    assert "greater than or equal to 1" in placed.by_field["rise"][0]
