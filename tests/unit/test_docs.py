"""The configuration reference cannot drift: every model class, field and allowed value is in docs/configuration.md."""

from __future__ import annotations

import enum
import functools
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


# Links between the documents: every relative link and its anchor resolves (GitHub's rules for heading anchors).

ROOT = DOC.parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^(```|~~~).*?^\1", flags=re.M | re.S)
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _prose(text: str) -> str:
    """The page without its fenced code blocks and inline code spans (neither holds links or headings)."""
    text = _FENCE.sub("", text)
    return re.sub(r"`[^`\n]*`", "", text)


@functools.cache
def _anchors(text: str) -> set[str]:
    """The anchors GitHub makes for a page's headings: lower case, punctuation dropped, spaces to '-', '-N' for repeats."""
    seen: dict[str, int] = {}
    anchors: set[str] = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", _FENCE.sub("", text), flags=re.M):
        heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps only its text
        slug = re.sub(r"[^\w\- ]", "", heading.lower().replace("`", "")).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _relative_links(page: Path) -> list[str]:
    """Every link target of `page` that is not an absolute URL (http, https, mailto)."""
    targets = _LINK.findall(_prose(page.read_text()))
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]


def test_the_link_finder_sees_links_and_anchors():
    assert "installing-from-the-debian-package" in _anchors((ROOT / "docs" / "operations.md").read_text())
    assert "docs/operations.md#installing-from-the-debian-package" in _relative_links(ROOT / "README.md")
    assert _anchors("# A `b` (c), d/e\n## x\n## x\n```\n# not a heading\n```\n") == {"a-b-c-de", "x", "x-1"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_and_anchor_resolves(page: Path):
    broken = []
    for target in _relative_links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no file {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest.read_text()):
            broken.append(f"{target}: no heading with the anchor #{anchor} in {dest.name}")
    assert not broken, f"{page.relative_to(ROOT)} has links that do not resolve: {broken}"
