"""Secrets in the model (the AMQP check's password): shown as the placeholder in every dump for people, kept
out of diffs, revealed only on purpose; a placeholder written back stands for the stored secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pacslb.engines.haproxy.plan import make_plan
from pacslb.engines.haproxy.render import HAProxyEnv
from pacslb.health import AMQPProbe, probe_for
from pacslb.model import dump_yaml, load_text
from pacslb.model.config import Config
from pacslb.model.diff import diff
from pacslb.model.secrets import (
    has_secrets,
    resolve,
    revealed_dump,
    secret_field_names,
    secrets_of,
    stored_form,
)
from pacslb.model.types import SECRET_PLACEHOLDER, Secret

PASSWORD = "Tr0ub4dor&3-amqp"
PATH = "virtual_services[RMQ].health_check.password"

TEXT = f"""version: 1
virtual_services:
  - name: RMQ
    mode: layer7-tcp
    listen: [{{address: 127.0.0.1, port: 5672}}]
    health_check: {{type: amqp, username: pacs, password: "{PASSWORD}"}}
    real_servers: [{{name: mq1, address: 127.0.0.2, port: 5672}}]
"""


def config(text: str = TEXT) -> Config:
    loaded = load_text(text)
    assert loaded.ok, [str(p) for p in loaded.problems]
    return loaded.config


def test_every_secret_field_of_the_model_is_a_secret():
    # the model's credentials (the AMQP check's and SMTP password, a webhook's HMAC key); a new one must be a Secret
    # too (and is then found by every walk)
    assert secret_field_names(Config) == {"password", "secret"}


def test_every_dump_for_people_shows_the_placeholder():
    c = config()
    hc = c.virtual_services[0].health_check
    shown = [
        c.model_dump_json(),
        json.dumps(c.model_dump(mode="json")),
        str(c.model_dump()),
        dump_yaml(c),
        repr(c),
        str(hc),
        json.dumps(Config.model_json_schema()),
    ]
    for text in shown:
        assert PASSWORD not in text
    assert c.model_dump(mode="json")["virtual_services"][0]["health_check"]["password"] == SECRET_PLACEHOLDER
    # the YAML dump quotes it ('*' starts a YAML alias), and reads back as the placeholder
    again = yaml.safe_load(dump_yaml(c))
    assert again["virtual_services"][0]["health_check"]["password"] == SECRET_PLACEHOLDER


def test_the_value_is_revealed_only_on_purpose_and_the_probe_gets_it():
    c = config()
    assert revealed_dump(c)["virtual_services"][0]["health_check"]["password"] == PASSWORD
    assert stored_form(c) == {PATH: PASSWORD}
    assert has_secrets(c) and not has_secrets(config(TEXT.replace(', username: pacs, password: "' + PASSWORD + '"', "")))
    probe = probe_for(c.virtual_services[0].health_check)
    assert isinstance(probe, AMQPProbe) and probe.password == PASSWORD and probe.username == "pacs"
    assert PASSWORD not in repr(probe)


def test_a_changed_secret_is_a_change_without_its_value():
    old, new = config(), config(TEXT.replace(PASSWORD, "another-password"))
    assert old != new
    (change,) = diff(old, new)
    assert change.path == PATH and change.secret and change.kind == "changed"
    assert str(change) == f"{PATH}: changed (a secret: its value is not shown)"
    assert change.as_dict()["old"] == change.as_dict()["new"] == SECRET_PLACEHOLDER
    plan = make_plan(old, new, HAProxyEnv(state_dir=Path("/tmp/x"), base_dir=Path("/tmp")))
    assert not plan.empty and plan.method.value == "none"  # HAProxy does not carry it: nothing to reload
    text = json.dumps(plan.as_dict())
    assert PASSWORD not in text and "another-password" not in text
    assert diff(old, config()) == []


def test_an_added_or_removed_service_shows_its_secret_as_the_placeholder():
    empty = config("version: 1\n")
    added = diff(empty, config())
    removed = diff(config(), empty)
    for changes in (added, removed):
        text = json.dumps([c.as_dict() for c in changes]) + "".join(map(str, changes))
        assert PASSWORD not in text and SECRET_PLACEHOLDER in text
    switched = diff(config(), config(TEXT.replace(f', username: pacs, password: "{PASSWORD}"', "").replace("amqp", "connect")))
    assert PASSWORD not in json.dumps([c.as_dict() for c in switched])
    assert any(c.secret and c.path == PATH for c in switched)


def test_a_placeholder_written_back_keeps_the_stored_secret():
    running = config()
    sent_back = config(running.model_dump_json())  # what a GET answered, sent back as it was
    assert sent_back.virtual_services[0].health_check.password.is_placeholder
    resolved, problems = resolve(sent_back, stored_form(running))
    assert problems == [] and resolved == running
    assert resolved.virtual_services[0].health_check.password.reveal() == PASSWORD
    written = config(TEXT.replace(PASSWORD, "a-new-one"))  # a new value is taken as it is
    assert resolve(written, stored_form(running))[0].virtual_services[0].health_check.password.reveal() == "a-new-one"


def test_a_placeholder_with_nothing_stored_is_a_problem_naming_the_field():
    renamed = config(TEXT.replace(PASSWORD, SECRET_PLACEHOLDER).replace("RMQ", "RMQ2"))
    _, problems = resolve(renamed, stored_form(config()))
    (problem,) = problems
    assert problem.path == "virtual_services[RMQ2].health_check.password"
    assert "write the secret itself" in problem.message and PASSWORD not in problem.message


@pytest.mark.parametrize("value", ["bad\npassword", "tab\there"])
def test_a_bad_secret_is_refused_without_echoing_it(value):
    loaded = load_text(TEXT.replace(PASSWORD, value.replace("\n", "\\n").replace("\t", "\\t")))
    assert not loaded.ok
    (problem,) = loaded.problems
    assert problem.path == PATH and "control characters" in problem.message and value not in str(problem)


def test_secrets_compare_by_value_and_never_print_it():
    assert Secret("a") == Secret("a") and Secret("a") != Secret("b")
    assert str(Secret("a")) == SECRET_PLACEHOLDER and "a" not in repr(Secret("a")).replace(SECRET_PLACEHOLDER, "")
    assert secrets_of(config())[PATH].reveal() == PASSWORD
