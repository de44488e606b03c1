r"""Free text and quoting: how each kind of value is written as a word of haproxy.cfg.

HAProxy's configuration parser splits a line into words on spaces, strips quotes and escapes, and
expands environment variables inside double quotes. A value in double quotes with `\`, `"` and `$`
escaped reaches HAProxy exactly as written. Log-format arguments (header values, redirect locations,
`http-check send hdr`) also give `%` a meaning, so it is doubled there first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


class Text(str):
    """Free text from the model: always written in double quotes."""


class LogFormat(str):
    """Free text inside a log-format argument: `%` doubled, then quoted like Text."""


class Word(str):
    """A name, address or path: written bare when HAProxy reads it as one plain word, quoted otherwise."""


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PLAIN_WORD = re.compile(r"^[A-Za-z0-9_.:/@,()\[\]+=*^|~!&<>-]+$")
_PLAIN_FETCH_ARG = re.compile(r"^[A-Za-z0-9_.:/@+=*^|~!&<>-]*$")


def quote(value: str) -> str:
    """`value` as one double-quoted HAProxy word; control characters are refused, never written."""
    if _CONTROL.search(value):
        raise ValueError(f"{value!r} holds a control character and cannot be written to haproxy.cfg")
    if not value:
        # HAProxy's keyword parsers take an empty word for the end of the line
        raise ValueError("an empty value cannot be written to haproxy.cfg as a word")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def logformat(value: str) -> str:
    """`value` as a quoted log-format string that HAProxy outputs literally."""
    if not value:
        return '"%[str()]"'  # the empty string, as a word HAProxy does not take for a missing argument
    return quote(value.replace("%", "%%"))


def word(value: str) -> str:
    """`value` bare when it is a plain word, quoted otherwise."""
    return value if _PLAIN_WORD.match(value) else quote(value)


def fetch(name: str, *args: str | int) -> str:
    """A sample fetch or converter call; arguments that are not plain are quoted for HAProxy's argument parser.

    The result is one word of the configuration: pass it as `Word` so that the line quotes it again
    when it holds characters special to the configuration parser (HAProxy unquotes twice).
    """
    out = []
    for arg in args:
        text = str(arg)
        if _CONTROL.search(text):
            raise ValueError(f"{text!r} holds a control character and cannot be written to haproxy.cfg")
        out.append(text if _PLAIN_FETCH_ARG.match(text) else '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return f"{name}({','.join(out)})"


def render_arg(arg: object) -> str:
    """One word of a directive, quoted according to its kind; plain `str` is HAProxy syntax we built."""
    if isinstance(arg, LogFormat):
        return logformat(arg)
    if isinstance(arg, Text):
        return quote(arg)
    if isinstance(arg, Word):
        return word(arg)
    if isinstance(arg, (str, int)):
        return str(arg)
    raise TypeError(f"cannot write {arg!r} into haproxy.cfg")


def render_line(words: Iterable[object]) -> str:
    """A directive's words joined by spaces; a control character can never slip through."""
    line = " ".join(render_arg(w) for w in words)
    if _CONTROL.search(line):
        raise ValueError(f"{line!r} holds a control character and cannot be written to haproxy.cfg")
    return line
