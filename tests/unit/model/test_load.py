"""The loader reports every problem with its field path and accepts what is valid."""

from pathlib import Path

from pacslb.model import Duration, PortRange, load_text

VALID = """
version: 1
virtual_services:
  - name: web
    mode: layer7-http
    listen: [{address: 127.0.0.1, port: 8080}]
    real_servers:
      - {name: rs1, address: 192.0.2.1, port: 80}
"""


def test_valid_minimal_config_loads():
    loaded = load_text(VALID)
    assert loaded.ok, loaded.problems
    vs = loaded.config.virtual_services[0]
    assert vs.forwarded_for is True
    assert str(loaded.config.effective_timeouts(vs).client) == "12h"


def test_every_problem_is_reported_with_named_paths():
    text = VALID.replace("port: 80}", "port: 99999, wieght: 3}") + "    scheduler: fastest\n"
    loaded = load_text(text)
    assert not loaded.ok
    lines = [str(p) for p in loaded.problems]
    assert "virtual_services[web].real_servers[rs1].port: input should be less than or equal to 65535" in lines
    assert "virtual_services[web].real_servers[rs1].wieght: unknown field 'wieght'; did you mean 'weight'?" in lines
    assert any(lis.startswith("virtual_services[web].scheduler: 'fastest' is not allowed") for lis in lines)


def test_duplicate_yaml_keys_are_refused_with_line():
    loaded = load_text("version: 1\nversion: 1\n")
    assert [str(p) for p in loaded.problems] == [
        "line 2, column 1: not valid YAML: the key 'version' appears twice in one mapping"
    ]


def test_missing_certificate_names_the_file(tmp_path: Path):
    text = VALID + "    tls: {certificates: [missing.pem]}\n"
    loaded = load_text(text, base_dir=tmp_path)
    assert [str(p) for p in loaded.problems] == [
        f"virtual_services[web].tls.certificates[0]: file {tmp_path}/missing.pem does not exist: create it, or correct the path"
    ]


def test_durations_and_ports_parse_and_print():
    assert str(Duration.parse("43200s")) == "12h"
    assert str(Duration.parse(1)) == "1s"
    assert str(Duration.parse("1500ms")) == "1500ms"
    assert PortRange.parse("8000-8010").overlaps(PortRange.parse(8005))
    assert str(PortRange.parse(" 443 ")) == "443"
