"""URL rewriting (issue 15): a `rewrite:` block on a Layer 7 rule changes the request before it goes on.

A rule with `use_service` may rewrite what it takes: the path's prefix (`path_prefix`), the path by a regular
expression (`path_regex`), and the Host header (`host`). The rule first decides (its `match` sees the request as
the client sent it), then the rewrite happens, then the request goes to the backend-only service. HAProxy
(engines/haproxy/rules.py) runs the regular expressions with PCRE2, while the model checks them with Python's
`re`: `pattern_problem` refuses what the two would read differently, so that what validates here also loads there.
Each class checks what it sees alone; what spans objects is in `rewrite_problems` (called by model/checks.py).
"""

from __future__ import annotations

import re
from typing import Any, Iterator

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .limits import MAX_TEXT
from .problems import Problem
from .types import URLPath

MAX_PATTERN = 256  # characters of a path_regex pattern: a URL pattern is a line, not a program
MAX_REPLACE = 1024  # characters of a replacement path
MAX_GROUPS = 9  # HAProxy's replacement formats name groups \1 to \9 only
MAX_HOST = 261  # a DNS name (253) and ':65535'
MAX_GROUP_NAME = 32  # PCRE2 refuses longer group names; Python does not

# Python's `re` takes these, PCRE2 10.42 (HAProxy 2.6 on Debian 12) refuses them or reads them otherwise.
_PYTHON_ONLY = (
    (re.compile(r"\\[NuU]"), r"\N, \u and \U are Python escapes that PCRE2 refuses: write \xHH"),
    (re.compile(r"\(\?[imsx]*[aLu]"), "the inline flags a, L and u are Python's only: PCRE2 takes i, m, s and x"),
    (re.compile(r"\{,"), "'{,N}' means 'up to N' in Python but a literal '{,N}' in PCRE2: write {0,N}"),
)
_GROUP_NAME = re.compile(r"\(\?P?<([A-Za-z_]\w*)>")
_BACKREF = re.compile(r"\\(.?)")
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
                   r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")  # fmt: skip


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, str_max_length=MAX_TEXT)


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` cannot be a path_regex (None when it can): too long, not ASCII, not a regular expression
    Python compiles, or a form PCRE2 would refuse or read otherwise."""
    if len(pattern) > MAX_PATTERN:
        return f"the pattern has {len(pattern)} characters: at most {MAX_PATTERN}"
    if not pattern.isascii() or any(ord(c) < 0x20 or ord(c) == 0x7F for c in pattern):
        return "the pattern must be printable ASCII (match a percent-encoded path: %C3%A9, not é)"
    try:
        compiled = re.compile(pattern)
    except re.error as error:
        return f"not a regular expression: {error}"
    for found, why in _PYTHON_ONLY:
        if found.search(pattern):
            return why
    for name in _GROUP_NAME.findall(pattern):
        if len(name) > MAX_GROUP_NAME:
            return f"the group name {name!r} is longer than PCRE2's {MAX_GROUP_NAME} characters"
    if compiled.groups > MAX_GROUPS:
        return f"the pattern has {compiled.groups} groups: the replacement can name \\1 to \\{MAX_GROUPS} only"
    return None


def replace_problem(replace: str, groups: int) -> str | None:
    """Why `replace` cannot replace a path matched by a pattern of `groups` groups (None when it can)."""
    if not replace:
        return "the replacement is empty: write the new path ('/' at least)"
    if len(replace) > MAX_REPLACE:
        return f"the replacement has {len(replace)} characters: at most {MAX_REPLACE}"
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in replace):
        return "the replacement must not contain spaces or control characters (encode a space as %20)"
    for escape in _BACKREF.findall(replace):
        if not escape.isdigit():
            return "a backslash in the replacement names a group (\\1 to \\9): no other escape is read"
        if int(escape) > groups:
            return f"the replacement names group \\{escape} but the pattern has {groups} group(s)"
    return None


class PathPrefixRewrite(_Strict):
    """Replace the path's leading `prefix` with `replace`; the rest of the path and the query string stay."""

    prefix: URLPath = Field(description="the leading part of the path to replace, e.g. '/dicomweb/'")
    replace: URLPath = Field(description="what takes its place, e.g. '/dcm4chee-arc/aets/DCM4CHEE/rs/'")

    @field_validator("prefix", "replace")
    @classmethod
    def _no_backslash(cls, value: str) -> str:
        if "\\" in value:
            raise ValueError(f"{value!r} holds a backslash: a URL path has none (encode it as %5C)")
        return value


class PathRegexRewrite(_Strict):
    """When `pattern` matches the path (the query string is left out and kept), the whole path becomes
    `replace`, in which \\1 to \\9 are the pattern's groups."""

    pattern: str = Field(
        max_length=MAX_PATTERN,
        description=f"a regular expression (PCRE2, at most {MAX_PATTERN} characters), searched in the path",
    )
    replace: str = Field(max_length=MAX_REPLACE, description="the new path; \\1 to \\9 are the pattern's groups")

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        if problem := pattern_problem(value):
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _replace(self) -> "PathRegexRewrite":
        if problem := replace_problem(self.replace, re.compile(self.pattern).groups):
            raise ValueError(f"replace: {problem}")
        return self


class Rewrite(_Strict):
    """How a rule changes the request it takes, before the backend-only service sees it."""

    path_prefix: PathPrefixRewrite | None = Field(default=None, description="replace the beginning of the path")
    path_regex: PathRegexRewrite | None = Field(default=None, description="replace the path by a regular expression")
    host: str | None = Field(
        default=None, max_length=MAX_HOST, description="the Host header the real servers receive ('pacs.example.org:8080')"
    )

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is not None:
            found = _HOST.match(value)
            port = value.rpartition(":")[2] if found and not value.endswith("]") and ":" in value.rpartition("]")[2] else None
            if not found or (port is not None and not 1 <= int(port) <= 65535):
                raise ValueError(f"{value!r} is not a host name, IPv4 address or [IPv6] address, with an optional :PORT")
        return value

    @model_validator(mode="after")
    def _something(self) -> "Rewrite":
        if not (self.path_prefix or self.path_regex or self.host):
            raise ValueError("a rewrite needs path_prefix, path_regex or host")
        if self.path_prefix and self.path_regex:
            raise ValueError("path_prefix and path_regex both rewrite the path: keep one (a pattern can do both)")
        return self


def rewrite_problems(config: Any) -> Iterator[Problem]:
    """What a rule's rewrite cannot be, given its service: HTTP only, with use_service, and not behind the WAF."""
    for vs in config.virtual_services:
        for rule in vs.rules:
            if rule.rewrite is None:
                continue
            path = f"virtual_services[{vs.name}].rules[{rule.name}].rewrite"
            if vs.mode.value != "layer7-http":
                yield Problem(path, f"rewriting changes HTTP requests: a {vs.mode.value} service cannot; use layer7-http")
            elif rule.use_service is None:
                yield Problem(path, "a rewrite goes with use_service (redirect and deny answer at once): remove rewrite")
            elif (rule.waf is not None and rule.waf.mode != "off") or (vs.waf is not None and vs.waf.mode != "off"):
                # the WAF's return trip runs the rules again on the request: a rewritten path would match otherwise
                yield Problem(path, "a rule behind the WAF cannot rewrite yet: remove rewrite, or the WAF of this rule")
