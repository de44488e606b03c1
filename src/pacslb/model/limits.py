"""The limits of what the appliance reads as a configuration: size, nesting, values (docs/limits.md).

A configuration comes as a YAML file (`pacslb validate`, `apply`, `up`, SIGHUP), as JSON (the management
API, the controller socket, the HA peer link) or from a stored revision; each one is bounded here before the
model sees it, so that no input makes the appliance parse, recurse or allocate without end:

- MAX_CONFIG_BYTES: the text of a configuration. The generated benchmark configuration (1,000 services of
  10 real servers each, bench/runtime_ops.py) is 0.7 MB of YAML; the True PACS template 30 KB.
- MAX_DEPTH: mappings and lists inside each other. The model's deepest field is 8 levels down; 5,000
  levels made the parsers recurse out of stack (issue 13).
- MAX_VALUES: values in the document once YAML aliases are expanded (an alias of an alias of ... is the
  "billion laughs"): the benchmark configuration holds about 90,000.

Each refusal is a Problem; `shape_problems` walks the data without recursion and without expanding aliases.

Then the model's own bounds, declared on its fields (so in the JSON Schema as maxLength and maxItems, and
enforced by pydantic with the field's path): every text at most MAX_TEXT characters (paths need PATH_MAX), a
description at most MAX_DESCRIPTION, and each list at most its MAX_* items below. They are generous for True
PACS (35 services) and for the 1,000 services of 10 real servers of the benchmark.
"""

from __future__ import annotations

from typing import Any

from pydantic import BeforeValidator

from .problems import Problem, item_label

KiB = 1024
MiB = 1024 * KiB
MAX_CONFIG_BYTES = 8 * MiB
MAX_DEPTH = 32
MAX_VALUES = 1_000_000

MAX_TEXT = 4096  # any text of the model: PATH_MAX for file paths; URLs, header values, HL7 segments
MAX_DESCRIPTION = 1024  # a virtual service's description: a sentence or two, stored with every revision
MAX_VIRTUAL_SERVICES = 5000
MAX_REAL_SERVERS = 1000  # per virtual service
MAX_RULES = 1000  # per virtual service
MAX_LISTENERS = 256  # per virtual service (a listener can be a port range)
MAX_PORT_RANGES = 256  # listeners with a port range, in all: each is compared with every listener (checks.py)
MAX_CERTIFICATES = 1000  # per virtual service: one per SNI name served
MAX_HEADER_RULES = 256  # request and response header changes, each
MAX_MATCH_ITEMS = 1000  # the alternatives of one rule condition (paths, hosts, networks...)
MAX_SMALL_LIST = 100  # expected statuses, HL7 segments, allowed directories, floating IPs


def _children(node: Any) -> list[Any]:
    return list(node.values()) if isinstance(node, dict) else node


def shape_problems(data: Any) -> list[Problem]:
    """A Problem when plain data (from YAML or JSON) refers to itself, holds more than MAX_VALUES values or
    nests deeper than MAX_DEPTH; [] otherwise. Shared values (YAML aliases) are counted as often as they are
    used, but walked once."""
    if _plain_tree(data):  # what JSON and most YAML give: nothing to report, found in one quick pass
        return []
    return _shape_walk(data)


def _plain_tree(data: Any) -> bool:
    """Whether `data` is a tree (no mapping or list reached twice: no alias, no loop) of at most MAX_VALUES values
    with no mapping or list MAX_DEPTH levels down: then `_shape_walk` finds nothing. One pass, level by level,
    that stops at the first mapping or list seen twice (`_shape_walk` then says what it is); the full walk took
    about 130 ms of each apply at 1,000 services x 10 real servers."""
    seen: set[int] = set()
    values = 1
    level = [data] if isinstance(data, (dict, list)) else []
    for _depth in range(MAX_DEPTH):
        below: list[Any] = []
        for node in level:
            if id(node) in seen:
                return False
            seen.add(id(node))
            children = node.values() if isinstance(node, dict) else node
            values += len(children)
            below += [c for c in children if isinstance(c, (dict, list))]
        if values > MAX_VALUES:
            return False
        if not below:
            return True
        level = below
    return False  # a mapping or list MAX_DEPTH levels down


def _shape_walk(data: Any) -> list[Problem]:
    """shape_problems on any data: sizes counted bottom-up, each shared value walked once."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        node, finished = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        key = id(node)
        if finished:  # every child is counted: this node's size is known
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] if isinstance(c, (dict, list)) else 1 for c in _children(node))
            if sizes[key] > MAX_VALUES:
                return [Problem("", f"the configuration holds more than {MAX_VALUES:,} values (YAML aliases counted as "
                                    "often as they are used): split it, or write it without nested aliases")]  # fmt: skip
            continue
        if key in sizes:
            continue
        if key in on_path:
            return [Problem("", "the configuration refers to itself (a YAML alias inside its own anchor): write the "
                                "value out")]  # fmt: skip
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if isinstance(c, (dict, list)))
    return _depth_problems(data)


def _depth_problems(data: Any) -> list[Problem]:
    """The path of the first value nested deeper than MAX_DEPTH (the data is bounded: walked as a tree)."""
    stack: list[tuple[Any, int, str]] = [(data, 0, "")]
    while stack:
        node, depth, path = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        if depth >= MAX_DEPTH:
            return [Problem(path, f"nested deeper than {MAX_DEPTH} levels of mappings and lists: no field of the model "
                                  "is; remove the extra brackets or indentation")]  # fmt: skip
        if isinstance(node, dict):
            stack.extend((v, depth + 1, f"{path}.{k}" if path else str(k)) for k, v in node.items())
        else:
            stack.extend((v, depth + 1, f"{path}{item_label(v, i)}") for i, v in enumerate(node))
    return []


def too_deep(what: str = "the document") -> Problem:
    """The Problem of a document a parser could not even read for its nesting (it gave up, or ran out of stack)."""
    return Problem("", f"{what} nests deeper than {MAX_DEPTH} levels of mappings and lists: no field of the model "
                       "does; remove the extra brackets or indentation")  # fmt: skip


def too_large(size: int, what: str = "the configuration") -> Problem:
    return Problem("", f"{what} has {size:,} bytes; at most {MAX_CONFIG_BYTES:,} ({MAX_CONFIG_BYTES // MiB} MiB) are "
                       "read: split it, or remove what it repeats")  # fmt: skip


def at_most(length: int) -> BeforeValidator:
    """A validator that refuses text over `length` characters first, before any other check of the field reads
    it, saying how long it is (never echoing it: it may be megabytes). Beside `Field(max_length=...)`, which
    puts the bound in the JSON Schema."""

    def check(value: Any) -> Any:
        if isinstance(value, str) and len(value) > length:
            raise ValueError(f"at most {length:,} characters (this one has {len(value):,}): shorten it")
        return value

    return BeforeValidator(check)
