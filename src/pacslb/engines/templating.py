"""The one Jinja environment of the engines' renderers (HAProxy, keepalived, Apache for the WAF).

STYLE.md: templates only lay out what Python built; an undefined name is an error (StrictUndefined), block
tags leave no blank lines or indentation behind (trim_blocks, lstrip_blocks), nothing is HTML-escaped (these
are configuration files: each engine quotes free text with its own filter), and the last newline is kept."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2


def environment(folder: Path, filters: dict[str, Callable[..., Any]]) -> jinja2.Environment:
    """A Jinja environment over the templates in `folder`, with the engine's own `filters` (its quoting)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        keep_trailing_newline=True,
    )
    env.filters.update(filters)
    return env
