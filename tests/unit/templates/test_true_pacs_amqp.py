"""The True PACS template's `amqp` check for VIP 1: off by default (the guide's connect), offered in comments."""

from __future__ import annotations

from pacslb.model import load_text
from pacslb.templates.true_pacs import TruePacsParams, render_true_pacs


def _vip1(text: str):
    loaded = load_text(text)
    assert loaded.ok, [str(p) for p in loaded.problems]
    return loaded.config.service("WFC_RMQAMQP")


def test_connect_by_default_with_the_amqp_check_explained() -> None:
    text = render_true_pacs()
    assert _vip1(text).health_check.type == "connect"
    assert "health_check: {type: amqp}" in text  # the comment says how to choose it
    assert "off by default" in text


def test_amqp_check_when_asked() -> None:
    text = render_true_pacs(TruePacsParams(amqp_check=True))
    vs = _vip1(text)
    assert vs.health_check.type == "amqp" and vs.health_check.username is None
    others = [s for s in load_text(text).config.virtual_services if s.name != "WFC_RMQAMQP"]
    assert all(s.health_check.type != "amqp" for s in others)
