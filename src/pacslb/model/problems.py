"""Problems: validation errors as values a user can act on, each with the path of its field.

Paths name list items by their `name` where they have one, so an administrator reads
`virtual_services[WFC_443].real_servers[rs1].port` rather than `virtual_services.3.real_servers.0.port`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, Iterable, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError


@dataclass(frozen=True)
class Problem:
    path: str
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{prefix}{self.path}: {self.message}" if self.path else f"{prefix}{self.message}"


def errors(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


def warnings(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "warning"]


MAX_LABEL = 64  # a valid name has at most 63 characters: a longer one (hostile, say) is named by its index


def item_label(item: Any, index: int) -> str:
    """`[name]` for a list item that has a usable name, `[index]` otherwise."""
    if isinstance(item, dict):
        name = item.get("name")
        if isinstance(name, str) and name and len(name) <= MAX_LABEL and all(c not in name for c in "[]\n"):
            return f"[{name}]"
    if isinstance(item, BaseModel) and isinstance(getattr(item, "name", None), str):
        return f"[{item.name}]"
    return f"[{index}]"


def path_of(loc: tuple[Any, ...], data: Any) -> str:
    """Turn a pydantic error location into a readable path, walking the raw input beside it.

    Location parts that are not in the input (the tags of discriminated unions, pydantic's
    `function-after[...]` steps) are left out; the last part stays even when absent (a missing field).
    """
    parts: list[str] = []
    node = data
    for i, key in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(key, int) and isinstance(node, list) and 0 <= key < len(node):
            parts.append(item_label(node[key], key))
            node = node[key]
        elif isinstance(key, str) and isinstance(node, dict) and key in node:
            parts.append(("." if parts else "") + _plain(key))
            node = node[key]
        elif last and isinstance(key, str) and "[" not in key and "(" not in key and not _is_union_tag(node, key):
            parts.append(("." if parts else "") + _plain(key))
        # else: a union tag or validator step that the user never wrote
    return "".join(parts)


def _printable(key: str) -> str:
    """A key as the user can read it on one line: odd keys (control characters, spaces) are quoted."""
    return f"'{key}'" if key.isprintable() and key.strip() == key and key else repr(key)


def _given(value: Any) -> str:
    """A value the user wrote, as a message quotes it: a scalar as written, a list or a mapping by its kind (it may be large)."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "an empty value" if value is None else str(value)


def _plain(key: str) -> str:
    """A key in a path: as written when it reads plainly, quoted otherwise."""
    return key if key.isprintable() and " " not in key and key else repr(key)


def _is_union_tag(node: Any, key: str) -> bool:
    """pydantic ends the location of a whole-object error in a tagged union with the tag itself."""
    return isinstance(node, dict) and node.get("type") == key


def _unwrap(tp: Any) -> Any:
    """An annotation without Annotated and without the None of an Optional."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        elif get_origin(tp) in (Union, UnionType) and type(None) in get_args(tp):
            rest = [a for a in get_args(tp) if a is not type(None)]
            tp = rest[0] if len(rest) == 1 else Union[tuple(rest)]
        else:
            return tp


def _tags_of(model: type[BaseModel]) -> set[str]:
    """The values of a model's `type` literal: the tags pydantic names in the location of a discriminated union."""
    field = model.model_fields.get("type")
    args = get_args(field.annotation) if field is not None else ()
    return {str(getattr(a, "value", a)) for a in args}


def _step(tp: Any, key: Any) -> Any:
    """The annotation one location part further in, or None when the location leaves the model."""
    origin = get_origin(tp)
    if isinstance(key, int) and origin in (list, tuple, set, frozenset):
        return get_args(tp)[0]
    if isinstance(key, str) and origin is dict:
        return get_args(tp)[1]
    if isinstance(tp, type) and issubclass(tp, BaseModel) and isinstance(key, str) and key in tp.model_fields:
        return tp.model_fields[key].annotation
    if origin in (Union, UnionType) and isinstance(key, str):
        tagged = [m for m in get_args(_unwrap(tp)) if isinstance(m, type) and issubclass(m, BaseModel) and key in _tags_of(m)]
        return tagged[0] if len(tagged) == 1 else None
    if isinstance(key, str) and ("[" in key or "(" in key):  # a validator step pydantic names: the same value
        return tp
    return None


def fields_at(loc: tuple[Any, ...], model: type[BaseModel]) -> set[str] | None:
    """The field names valid at the object a pydantic location points to, or None when the model does not tell.

    Walks the model's annotations beside the location: a field name to its annotation, a list index to the
    item, a union tag to the member it names.
    """
    tp: Any = model
    for key in loc:
        tp = _step(_unwrap(tp), key)
        if tp is None:
            return None
    tp = _unwrap(tp)
    return set(tp.model_fields) if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _message(err: dict[str, Any], model: type[BaseModel]) -> str:
    kind = err["type"]
    msg = err["msg"]
    if kind == "extra_forbidden":
        key = str(err["loc"][-1])
        # only the fields valid where the key was written: a name from another section would mislead
        known = fields_at(tuple(err["loc"][:-1]), model) or set()
        hint = difflib.get_close_matches(key, sorted(known), n=1)
        return f"unknown field {_printable(key)}" + (f"; did you mean '{hint[0]}'?" if hint else "; remove it")
    if kind == "missing":
        return "required field is missing"
    if kind == "union_tag_invalid":
        expected = err.get("ctx", {}).get("expected_tags", "")
        return f"unknown type {err['input']!r}; choose one of {expected}"
    if kind == "union_tag_not_found":
        return "needs a 'type' field"
    if kind == "literal_error" or kind == "enum":
        expected = err.get("ctx", {}).get("expected", "")
        if " or " not in expected and "," not in expected:  # one value allowed (version: 1): no choice to offer
            return f"{err['input']!r} is not allowed; write {expected}"
        return f"{err['input']!r} is not allowed; choose one of {expected}"
    if kind in ("int_parsing", "int_type", "int_from_float"):  # pydantic's words name no fix
        return f"{_given(err.get('input'))} is not a whole number: write it in digits, without a unit"
    if kind in ("bool_parsing", "bool_type"):
        return f"{_given(err.get('input'))} is not true or false: write true or false"
    if kind in ("float_parsing", "float_type"):
        return f"{_given(err.get('input'))} is not a number: write one, e.g. 2.5"
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a mapping of fields (key: value)"
    if kind == "list_type":
        return "must be a list (items starting with '- ')"
    if kind == "string_too_long" or (kind == "too_long" and isinstance(err.get("input"), str)):
        # never echo the input: it may be megabytes (model/limits.py)
        given = f" (this one has {len(err['input']):,})" if isinstance(err.get("input"), str) else ""
        return f"at most {err['ctx']['max_length']:,} characters{given}: shorten it"
    if kind == "too_long":
        given = f" (this one has {len(err['input']):,})" if isinstance(err.get("input"), (list, tuple)) else ""
        return f"at most {err['ctx']['max_length']:,} items{given}: split the configuration, or remove some"
    return msg[0].lower() + msg[1:] if msg else kind


MAX_SHOWN = 60  # characters of a value quoted back in a message
MAX_MESSAGE = 1000


def _brief(message: str, given: Any) -> str:
    """The message with the value it quotes shortened: a hostile value may be megabytes, and a problem is
    printed, logged, stored with the audit log and sent back in every answer (model/limits.py)."""
    if isinstance(given, str) and len(given) > MAX_SHOWN:
        message = message.replace(repr(given), f"{given[:MAX_SHOWN]!r}... ({len(given):,} characters)")
    return message if len(message) <= MAX_MESSAGE else message[:MAX_MESSAGE] + "..."


def from_validation_error(exc: ValidationError, data: Any, model: type[BaseModel]) -> list[Problem]:
    """Every problem pydantic found, with readable paths and messages, in a stable order."""
    found = [Problem(path_of(tuple(e["loc"]), data), _brief(_message(e, model), e.get("input"))) for e in exc.errors()]
    return list(dict.fromkeys(found))  # a union can report the same problem twice
