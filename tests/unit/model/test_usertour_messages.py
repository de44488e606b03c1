"""Wrong configurations an administrator writes by hand: each problem names the field and the fix, in the user's
words (not pydantic's or PyYAML's alone). Found by trying them with `pacslb validate` and `pacslb apply` on the demo."""

from __future__ import annotations

import pytest

from .test_hints import BASE, _lines

VALID = BASE  # the same valid configuration as the hints' tests, and the same reading of its problems
problems = _lines


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("port: 80}", "port: eighty}", "virtual_services[web].real_servers[rs1].port: 'eighty' is not a whole number: "
                                       "write it in digits, without a unit"),
        ("port: 80}", "port: 80, weight: heavy}", "virtual_services[web].real_servers[rs1].weight: 'heavy' is not a whole "
                                                  "number: write it in digits, without a unit"),
        ("port: 80}", "port: 80.5}", "virtual_services[web].real_servers[rs1].port: 80.5 is not a whole number: "
                                     "write it in digits, without a unit"),
        ("port: 80}", "port: [80]}", "virtual_services[web].real_servers[rs1].port: a list is not a whole number: "
                                     "write it in digits, without a unit"),
        ("port: 80}", "port: 80, backup: maybe}", "virtual_services[web].real_servers[rs1].backup: 'maybe' is not true or "
                                                  "false: write true or false"),
        ("version: 1", "version: 2", "version: 2 is not allowed; write 1"),
    ],
)  # fmt: skip
def test_a_value_of_the_wrong_kind_says_what_to_write(old, new, expected):
    assert expected in problems(VALID.replace(old, new))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (VALID.replace("    mode: layer7-http", "   mode: layer7-http"),
         "line 5, column 4: not valid YAML: expected <block end>, but found '<block mapping start>'; check this line's "
         "indentation: the keys of one mapping line up, and a list item starts with '- '"),
        (VALID.replace("    mode: layer7-http", "\tmode: layer7-http"),
         "line 5, column 1: not valid YAML: found character '\\t' that cannot start any token; indent with spaces, not tabs"),
        (VALID.replace("port: 80}", "port: 80"),
         "not valid YAML: expected ',' or '}', but got '<stream end>'; close the '{' opened before, or put a value "
         "holding ',' in quotes"),
        (VALID.replace("listen: [{address: 127.0.0.1, port: 8080}]", "listen: [{address: 127.0.0.1, port: 8080}"),
         "; close the '[' opened before, or put a value holding ',' in quotes"),
        (VALID.replace("mode: layer7-http", "mode: layer7: http"),
         "not valid YAML: mapping values are not allowed here; put a value holding ': ' in quotes, or indent this key "
         "like its neighbours"),
        (VALID.replace("name: web", "name: @web"),
         "that cannot start any token; put a value that starts with this character in quotes"),
    ],
)  # fmt: skip
def test_a_yaml_mistake_names_the_line_and_the_usual_fix(text, expected):
    found = problems(text)
    assert len(found) == 1 and expected in found[0], found


def test_a_yaml_problem_without_a_usual_fix_is_left_as_the_parser_says():
    found = problems("version: 1\nvirtual_services: *nowhere\n")
    assert len(found) == 1 and "not valid YAML: found undefined alias" in found[0] and found[0].endswith("'nowhere'"), found
