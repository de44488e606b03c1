"""The secrets of a configuration (fields of type `Secret`: the AMQP check's password): where they are, what
a placeholder written back stands for, and plain data that may hold them.

A secret is named by its field path, the way problems and diffs name fields:

    virtual_services[RMQ].health_check.password

Dumps show a secret as SECRET_PLACEHOLDER unless they ask for it (`revealed_dump`); a placeholder written
back ("********" from a GET, an edit form) means "keep the stored secret", and `resolve` puts the stored
one in. The change front door stores each revision's secrets apart from the revision (store/secrets.py),
by revision and path, so that a rollback restores the secret that revision ran with.
"""

from __future__ import annotations

import re
import typing
from typing import Any, Callable, Mapping, TypeVar

from pydantic import BaseModel

from .problems import Problem
from .types import MARK, REVEAL, SECRET_MARK_PREFIX, SECRET_PLACEHOLDER, Secret

M = TypeVar("M", bound=BaseModel)

_HOLDS: dict[type, bool] = {}


def _type_holds(tp: Any) -> bool:
    if tp is Secret:
        return True
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return _class_holds(tp)
    return any(_type_holds(arg) for arg in typing.get_args(tp))


def _class_holds(cls: type[BaseModel]) -> bool:
    """Whether a model class can hold a secret anywhere below it (worked out once per class): the walks skip
    the rest (real servers, rules), which keeps them cheap on a configuration of a thousand services."""
    if cls not in _HOLDS:
        _HOLDS[cls] = False  # a class that refers to itself holds no more than it does
        _HOLDS[cls] = any(_type_holds(f.annotation) for f in cls.model_fields.values())
    return _HOLDS[cls]


_FIELDS: dict[type, tuple[str, ...]] = {}


def _fields_that_hold(cls: type[BaseModel]) -> tuple[str, ...]:
    if cls not in _FIELDS:
        _FIELDS[cls] = tuple(name for name, f in cls.model_fields.items() if _type_holds(f.annotation))
    return _FIELDS[cls]


def _label(item: Any, index: int) -> str:
    name = getattr(item, "name", None)
    return name if isinstance(name, str) and name else str(index)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _replace(value: Any, path: str, fill: Callable[[str, Secret], Secret]) -> Any:
    """`value` with every secret below it replaced by fill(path, secret); unchanged parts are shared."""
    if isinstance(value, Secret):
        return fill(path, value)
    if isinstance(value, BaseModel):
        if not _class_holds(type(value)):
            return value
        update = {}
        for name in _fields_that_hold(type(value)):
            old = getattr(value, name)
            new = _replace(old, _join(path, name), fill)
            if new is not old:
                update[name] = new
        return value.model_copy(update=update) if update else value
    if isinstance(value, list):
        items = [_replace(item, f"{path}[{_label(item, i)}]", fill) for i, item in enumerate(value)]
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    return value


def secrets_of(model: BaseModel) -> dict[str, Secret]:
    """Every secret of a model (placeholders included), by field path."""
    found: dict[str, Secret] = {}

    def note(path: str, secret: Secret) -> Secret:
        found[path] = secret
        return secret

    _replace(model, "", note)
    return found


def stored_form(model: BaseModel) -> dict[str, str]:
    """The values of a model's secrets, by path, as the secret store keeps them (placeholders left out)."""
    return {path: s.reveal() for path, s in secrets_of(model).items() if not s.is_placeholder}


def has_secrets(model: BaseModel) -> bool:
    return bool(secrets_of(model))


def resolve(model: M, stored: Mapping[str, str], source: str = "the running configuration") -> tuple[M, list[Problem]]:
    """`model` with every placeholder replaced by the stored secret of its path, and a problem for each
    placeholder that has none (a new check, a renamed service: the secret itself must be written)."""
    problems: list[Problem] = []

    def fill(path: str, secret: Secret) -> Secret:
        if not secret.is_placeholder:
            return secret
        if path in stored:
            return Secret(stored[path])
        problems.append(Problem(path, f"{SECRET_PLACEHOLDER!r} stands for the stored secret, but {source} has none here "
                                      "(a new check, or a renamed service): write the secret itself"))  # fmt: skip
        return secret

    return _replace(model, "", fill), problems


def revealed_dump(model: BaseModel, **kwargs: Any) -> dict[str, Any]:
    """The model's JSON data with its secrets' values: for HA sync and the secret store, never for a person."""
    return model.model_dump(mode="json", context=REVEAL, **kwargs)


def marked_dump(model: BaseModel, **kwargs: Any) -> dict[str, Any]:
    """The model's JSON data with a mark of each secret (types.secret_mark) in its place: for comparing."""
    return model.model_dump(mode="json", context=MARK, **kwargs)


# --- plain data --------------------------------------------------------------------------------------


def is_mark(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(SECRET_MARK_PREFIX)


def scrub(value: Any) -> Any:
    """Plain data with every mark replaced by the placeholder (a diff's values, before anyone sees them)."""
    if is_mark(value):
        return SECRET_PLACEHOLDER
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


_STEP = re.compile(r"\[([^\]]*)\]|([^.\[]+)")


def _steps(path: str) -> list[tuple[str, str]]:
    """'a[x].b' -> [('key', 'a'), ('item', 'x'), ('key', 'b')]."""
    return [("item", m[1]) if m[1] is not None else ("key", m[2]) for m in _STEP.finditer(path)]


def put(data: Any, path: str, value: Any, only_over: Any = None) -> bool:
    """Set the field at `path` in plain data (lists of named items by name, others by index); with
    `only_over`, only where the data holds that value. False when the path is not in the data."""
    node = data
    steps = _steps(path)
    for kind, step in steps[:-1]:
        if kind == "key":
            node = node.get(step) if isinstance(node, dict) else None
        elif isinstance(node, list):
            named = [i for i in node if isinstance(i, dict) and i.get("name") == step]
            node = named[0] if named else (node[int(step)] if step.isdigit() and int(step) < len(node) else None)
        else:
            node = None
        if node is None:
            return False
    kind, last = steps[-1] if steps else ("key", "")
    if kind != "key" or not isinstance(node, dict) or last not in node:
        return False
    if only_over is not None and node[last] != only_over:
        return False
    node[last] = value
    return True


def _directly_secret(tp: Any) -> bool:
    if tp is Secret:
        return True
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return False
    return any(_directly_secret(arg) for arg in typing.get_args(tp))


def secret_field_names(root: type[BaseModel]) -> set[str]:
    """The names of the fields of type Secret anywhere below `root` (e.g. {'password'})."""
    names: set[str] = set()
    seen: set[type] = set()

    def walk(tp: Any) -> None:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if tp in seen or not _class_holds(tp):
                return
            seen.add(tp)
            for name, f in tp.model_fields.items():
                if _directly_secret(f.annotation):
                    names.add(name)
                walk(f.annotation)
            return
        for arg in typing.get_args(tp):
            walk(arg)

    walk(root)
    return names
