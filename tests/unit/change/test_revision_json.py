"""RevisionJson: a revision's JSON is exactly model_dump_json, with the unchanged services' dumps reused."""

from __future__ import annotations

from pacslb.change.revision_json import RevisionJson
from pacslb.change.service import with_real_servers
from pacslb.model import load_text
from pacslb.model.config import RealServerState
from pacslb.templates.true_pacs import TruePacsParams, render_true_pacs


def test_the_same_text_as_model_dump_json_change_after_change() -> None:
    config = load_text(render_true_pacs(TruePacsParams(amqp_check=True))).config  # a secret: shown as the placeholder
    dumps = RevisionJson()
    assert dumps.dump(config) == config.model_dump_json()
    for vs in [v for v in config.virtual_services if v.real_servers][:5]:
        config = with_real_servers(config, {(vs.name, vs.real_servers[0].name): {"state": RealServerState.DRAIN, "weight": 5}})
        assert dumps.dump(config) == config.model_dump_json()
    other = load_text(render_true_pacs()).config  # a configuration of other objects altogether
    assert dumps.dump(other) == other.model_dump_json()


def test_a_service_dump_is_reused_only_for_the_very_same_object() -> None:
    config = load_text(render_true_pacs()).config
    dumps = RevisionJson()
    dumps.dump(config)
    vs = next(v for v in config.virtual_services if v.real_servers)
    equal_copy = config.model_copy(update={"virtual_services": [v.model_copy(deep=True) for v in config.virtual_services]})
    changed = with_real_servers(equal_copy, {(vs.name, vs.real_servers[0].name): {"weight": 9}})
    assert dumps.dump(changed) == changed.model_dump_json()
    assert '"weight":9' in dumps.dump(changed)
