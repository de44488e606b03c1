"""The configuration reference cannot drift: every model class, field and allowed value is in docs/configuration.md."""

from __future__ import annotations

import enum
import re
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from pacslb.model.config import Config

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def _model_classes(root: type[BaseModel]) -> list[type[BaseModel]]:
    """Every model class reachable from `root` through field annotations (unions and lists included)."""
    found: list[type[BaseModel]] = []

    def walk(tp: typing.Any) -> None:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if tp in found:
                return
            found.append(tp)
            for field in tp.model_fields.values():
                walk(field.annotation)
        for arg in typing.get_args(tp):
            walk(arg)
        for meta in getattr(tp, "__metadata__", ()) or ():
            walk(meta)

    walk(root)
    return found


def _allowed_values(cls: type[BaseModel]) -> set[str]:
    """Enum members and Literal values that the fields of `cls` accept."""
    values: set[str] = set()

    def walk(tp: typing.Any) -> None:
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            values.update(str(m.value) for m in tp)
        elif typing.get_origin(tp) is typing.Literal:
            values.update(str(v) for v in typing.get_args(tp))
        for arg in typing.get_args(tp):
            if not (isinstance(tp, type) and issubclass(tp, BaseModel)):
                walk(arg)

    for field in cls.model_fields.values():
        walk(field.annotation)
    return values


def _sections(text: str) -> dict[str, str]:
    """Headings naming a class (## `Name`) -> the text up to the next heading."""
    parts = re.split(r"^(#{2,4} .*)$", text, flags=re.M)
    sections: dict[str, str] = {}
    for heading, body in zip(parts[1::2], parts[2::2], strict=False):
        named = re.fullmatch(r"#{2,4} `(\w+)`", heading.strip())
        if named:
            sections[named.group(1)] = body
    return sections


CLASSES = _model_classes(Config)


def test_the_walk_finds_the_whole_model():
    names = {c.__name__ for c in CLASSES}
    assert {"Config", "VirtualService", "RealServer", "HTTPCheck", "StickTablePersistence", "HeaderMatch"} <= names
    assert len(names) >= 25


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_field_is_documented_in_its_class_section(cls: type[BaseModel]):
    sections = _sections(DOC.read_text())
    assert cls.__name__ in sections, f"docs/configuration.md has no section '## `{cls.__name__}`'"
    body = sections[cls.__name__]
    # A section that names a base class (e.g. CheckTiming) documents the fields it inherits there.
    bases = [b for b in cls.__mro__[1:] if isinstance(b, type) and issubclass(b, BaseModel) and f"`{b.__name__}`" in body]
    missing = []
    for name in cls.model_fields:
        here = re.search(rf"^\| `{name}` \|", body, flags=re.M)
        inherited = any(
            name in b.model_fields and re.search(rf"^\| `{name}` \|", sections.get(b.__name__, ""), flags=re.M) for b in bases
        )
        if not (here or inherited):
            missing.append(name)
    assert not missing, f"fields of {cls.__name__} missing from its table in docs/configuration.md: {missing}"


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_allowed_value_is_documented(cls: type[BaseModel]):
    text = DOC.read_text()
    missing = sorted(v for v in _allowed_values(cls) if f"`{v}`" not in text)
    assert not missing, f"values accepted by {cls.__name__} missing from docs/configuration.md: {missing}"
