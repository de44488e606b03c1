"""The WAF tier's renderer: golden files per feature (tests/golden/waf/), then single properties."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pacslb.engines.waf.profile import PACS_PROFILE, PACS_SKIPPED_RULE_FILES, QIDO_KEYWORDS, QIDO_VALUE_RULES
from pacslb.engines.waf.render import CRS_RULE_FILES, CRS_RULES, WafEnv, build, quote, render
from pacslb.model import load_file, validate_data

GOLDEN_DIR = Path(__file__).resolve().parents[3] / "golden" / "waf"
CASES = sorted(p for p in GOLDEN_DIR.iterdir() if p.is_dir() and re.match(r"^\d{3}_", p.name))
ENV = WafEnv(Path("/var/lib/pacslb"))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden(case: Path, update_golden: bool) -> None:
    """Each case's config.yaml renders exactly its apache.conf (pytest --update-golden rewrites it)."""
    loaded = load_file(case / "config.yaml")
    assert loaded.ok and not loaded.problems, [str(p) for p in loaded.problems]
    text = render(loaded.config, ENV)
    assert text == render(loaded.config, ENV)  # deterministic
    expected = case / "apache.conf"
    if update_golden:
        expected.write_text(text)
        return
    assert expected.exists(), f"{expected} is missing: run `pytest --update-golden` and review the new file"
    assert text == expected.read_text(), f"{case.name}: rendering differs from apache.conf (pytest --update-golden)"


def _config(waf: dict | None, **service) -> dict:
    vs = {"name": "web", "mode": "layer7-http", "listen": [{"address": "10.0.0.10", "port": 80}],
          "real_servers": [{"name": "rs1", "address": "10.0.1.1", "port": 80}], **service}  # fmt: skip
    if waf is not None:
        vs["waf"] = waf
    return {"version": 1, "virtual_services": [vs]}


def _render(waf: dict | None, **service) -> str:
    loaded = validate_data(_config(waf, **service))
    assert loaded.ok, loaded.problems
    return render(loaded.config, ENV)


def test_no_policy_no_site_and_off_is_no_policy():
    for waf in (None, {"mode": "off"}):
        assert "<VirtualHost" not in _render(waf)


def test_modes_paranoia_and_thresholds():
    assert "SecRuleEngine DetectionOnly" in _render({})
    text = _render({"mode": "block", "paranoia_level": 3, "inbound_anomaly_threshold": 9})
    assert "SecRuleEngine On" in text
    assert "setvar:tx.paranoia_level=3" in text and "setvar:tx.inbound_anomaly_score_threshold=9" in text
    # the policy's setup comes before the Core Rule Set, which reads it
    assert text.index("setvar:tx.paranoia_level=3") < text.index("Include /usr/share/modsecurity-crs/rules/*.conf")


def test_the_pacs_profile_removes_rules_only_for_qido_attributes_and_keeps_the_injection_rules():
    text = _render({"profile": "pacs"})
    assert "ctl:requestBodyAccess=Off,ctl:ruleRemoveById=921422" in text
    assert "|application/dicom|" in text and "|application/dicom+json|" in text
    for rule in QIDO_VALUE_RULES:
        assert f'SecRuleUpdateTargetById {rule} "!ARGS:PatientName"' in text
    assert len(QIDO_KEYWORDS) == 32
    # libinjection and the other attack rules are never removed by the profile
    for rule in ("942100", "941100", "930100", "932100"):
        assert rule not in text
    assert "SecRuleRemoveById" not in text
    # wado-uid-paths: the engine is off only for GET/HEAD of UID-only URLs without a cookie
    assert '  SecRule &REQUEST_HEADERS:Cookie "@eq 0" "ctl:ruleEngine=Off"' in text
    assert not _render({}).count("SecRuleUpdateTargetById")


def test_the_pacs_profile_includes_crs_without_the_files_of_other_stacks():
    text = _render({"profile": "pacs"})
    assert "rules/*.conf" not in text
    for kept in ("901", "920", "921", "930", "931", "932", "941", "942", "944", "949", "959", "980"):
        assert re.search(rf"Include \S+/(?:REQUEST|RESPONSE)-{kept}-", text), kept
    for skipped in ("903.9002", "933", "934", "950", "951", "952", "953", "954"):
        assert not re.search(rf"Include \S+/(?:REQUEST|RESPONSE)-{skipped}", text), skipped
    assert "rules/*.conf" in _render({})  # without the profile: the whole Core Rule Set


def test_the_crs_file_list_is_the_installed_packages():
    installed = sorted(path.name for path in CRS_RULES.glob("*.conf"))
    assert list(CRS_RULE_FILES) == installed


def test_every_profile_entry_has_a_reason():
    assert len({entry.key for entry in PACS_PROFILE}) == len(PACS_PROFILE)
    assert all(len(entry.why) > 60 for entry in PACS_PROFILE + PACS_SKIPPED_RULE_FILES)


def test_one_site_per_policy_on_consecutive_ports_and_rule_policies_named_service_dot_rule():
    data = _config({"mode": "block"}, rules=[{"name": "up", "match": {"path_begins": ["/up"]}, "use_service": "be", "waf": {}}])
    data["settings"] = {"waf": {"first_port": 20000}}
    data["virtual_services"].append(
        {"name": "be", "mode": "backend-only", "real_servers": [{"name": "a", "address": "10.0.2.1", "port": 80}]}
    )
    loaded = validate_data(data)
    assert loaded.ok, loaded.problems
    sites = build(loaded.config, ENV).sites
    assert [(s.name, s.port) for s in sites] == [("web", 20000), ("web.up", 20001)]
    # both return into the service's own frontend
    assert sites[0].return_socket == sites[1].return_socket


def test_quoting_keeps_text_inside_its_argument():
    assert quote('/a"b\\c') == '"/a\\"b\\\\c"'
    with pytest.raises(ValueError):
        quote("a\nSecRuleEngine Off")
    text = _render({"exclusions": [{"tags": ["attack-xss"], "path_begins": '/x"y'}]})
    line = next(line for line in text.splitlines() if "12000" in line)
    assert line.strip().startswith('SecRule REQUEST_FILENAME "@beginsWith /x\\"y" "id:12000,')


def test_exclusions_everywhere_go_after_the_rules_scoped_ones_before():
    text = _render({"exclusions": [{"rule_ids": [942100], "parameter": "q"}, {"rule_ids": [920350]},
                                    {"rule_ids": [941100], "path_begins": "/notes"}]})  # fmt: skip
    crs = text.index("Include /usr/share/modsecurity-crs")
    assert text.index('SecRuleUpdateTargetById 942100 "!ARGS:q"') > crs
    assert text.index("SecRuleRemoveById 920350") > crs
    assert text.index("ctl:ruleRemoveById=941100") < crs


def test_allow_list_turns_the_engine_off_for_those_clients():
    text = _render({"allow_sources": ["10.20.0.0/16", "192.0.2.7"]})
    assert 'SecRule REMOTE_ADDR "@ipMatch 10.20.0.0/16,192.0.2.7" "id:10000,phase:1,pass,nolog,ctl:ruleEngine=Off"' in text
