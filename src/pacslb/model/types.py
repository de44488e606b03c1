"""Value types of the configuration model: names, addresses, ports, durations, free text.

Each type validates itself at the model boundary, so renderers can trust what they get.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import os
import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator, GetCoreSchemaHandler, GetJsonSchemaHandler, PlainSerializer
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

# HAProxy takes proxy and server names made of letters, digits, '-', '_', '.' and ':'.
# ':' is left out: it is the separator of `backend/server` in the runtime API's words.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
_NAME_RE = re.compile(NAME_PATTERN)

# RFC 1123 host name, for real servers given by DNS name.
_HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)

# Control characters would let a value break out of its line in an engine file.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def _check_name(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a text name")
    if not _NAME_RE.match(value):
        raise ValueError(
            f"{value!r} is not a valid name: use 1 to 63 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit (HAProxy takes no other characters)"
        )
    return value


Name = Annotated[str, BeforeValidator(_check_name)]


MAX_KNOWN_IP_TEXTS = 65_536  # spellings remembered by _ip_text: more than the real servers of a large site
MAX_REMEMBERED_TEXT = 64  # longer texts are parsed, never remembered (an IP address is at most 45 characters and a scope)


def _ip_text(value: str) -> str | None:
    """The address in its one spelling (IPv6 compressed, lower case), or None for what is no IP address. Remembered
    (`_ip_text_known`): a configuration of 10,000 real servers parses each address on every validation."""
    return _ip_text_known(value) if len(value) <= MAX_REMEMBERED_TEXT else _parse_ip_text(value)


def _parse_ip_text(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


_ip_text_known = functools.lru_cache(maxsize=MAX_KNOWN_IP_TEXTS)(_parse_ip_text)


def _check_ip(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be an IPv4 or IPv6 address written as text, e.g. '192.0.2.10'")
    address = _ip_text(value)
    if address is None:
        raise ValueError(f"{value!r} is not an IPv4 or IPv6 address")
    return address


IPAddress = Annotated[str, BeforeValidator(_check_ip)]


def _check_host(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be an IP address or a DNS name written as text")
    address = _ip_text(value)
    if address is not None:
        return address
    if value.replace(".", "").isdigit() or not _HOSTNAME_RE.match(value):
        raise ValueError(f"{value!r} is neither an IP address nor a valid DNS host name")
    return value.lower()


Host = Annotated[str, BeforeValidator(_check_host)]


def _check_network(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a network written as text, e.g. '10.0.0.0/8' or '192.0.2.7'")
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP network (write it as ADDRESS or ADDRESS/PREFIX)") from None


Network = Annotated[str, BeforeValidator(_check_network)]


def _check_text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError("must be text")
    text = str(value)
    if _CONTROL_RE.search(text):
        raise ValueError("must not contain control characters (newlines, tabs, NUL)")
    return text


Text = Annotated[str, BeforeValidator(_check_text)]
"""Free text that ends up in an engine file: no control characters; engines quote it."""


def _check_path_prefix(value: Any) -> str:
    text = _check_text(value)
    if not text.startswith("/"):
        raise ValueError(f"{text!r} must begin with '/'")
    if " " in text:
        raise ValueError(f"{text!r} must not contain spaces (encode them as %20)")
    return text


URLPath = Annotated[str, BeforeValidator(_check_path_prefix)]


@dataclass(frozen=True, order=True)
class PortRange:
    """One port or an inclusive range of ports, written `443` or `"8000-8010"`."""

    first: int
    last: int

    @classmethod
    def parse(cls, value: Any) -> "PortRange":
        if isinstance(value, PortRange):
            return value
        if isinstance(value, bool):
            raise ValueError("must be a port number or a range 'FIRST-LAST'")
        if isinstance(value, int):
            first = last = value
        elif isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
            first = last = int(value)
        elif isinstance(value, str) and re.fullmatch(r"\s*\d+\s*-\s*\d+\s*", value):
            first, last = (int(p) for p in value.split("-"))
        else:
            raise ValueError(f"{value!r} is not a port: write a number (443) or a range ('8000-8010')")
        for port in (first, last):
            if not 1 <= port <= 65535:
                raise ValueError(f"port {port} is out of range: ports are 1 to 65535")
        if first > last:
            raise ValueError(f"range {first}-{last} runs backwards: write the lower port first")
        return cls(first, last)

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"

    @property
    def is_single(self) -> bool:
        return self.first == self.last

    def overlaps(self, other: "PortRange") -> bool:
        return self.first <= other.last and other.first <= self.last

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls.parse,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda v: v.first if v.is_single else str(v)),
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": 65535},
                {"type": "string", "pattern": r"^\d+(-\d+)?$"},
            ],
            "description": "a port (443) or an inclusive range ('8000-8010')",
        }


_DURATION_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION_RE = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)?\s*$")


@dataclass(frozen=True, order=True)
class Duration:
    """A length of time, written `500ms`, `5s`, `30m`, `12h` or `1d`; a bare number is seconds."""

    milliseconds: int

    @classmethod
    def parse(cls, value: Any) -> "Duration":
        if isinstance(value, Duration):
            return value
        if isinstance(value, bool):
            raise ValueError("must be a duration such as '5s', '30m' or '12h'")
        if isinstance(value, int):
            if value < 0:
                raise ValueError(f"{value} is negative: a duration is 0 or more")
            ms = value * 1000
        elif isinstance(value, str) and (m := _DURATION_RE.match(value)):
            ms = int(m.group(1)) * _DURATION_UNITS[m.group(2) or "s"]
        else:
            raise ValueError(f"{value!r} is not a duration: write a number and a unit, e.g. '500ms', '5s', '30m', '12h'")
        if ms > 24 * 24 * 3_600_000:
            raise ValueError(f"{value!r} is too long: durations are at most 24 days (HAProxy's limit)")
        return cls(ms)

    def __str__(self) -> str:
        """The largest unit that states the value exactly: 43200000 ms is '12h'."""
        for unit in ("d", "h", "m", "s"):
            size = _DURATION_UNITS[unit]
            if self.milliseconds and self.milliseconds % size == 0:
                return f"{self.milliseconds // size}{unit}"
        return f"{self.milliseconds}ms"

    @property
    def seconds(self) -> float:
        return self.milliseconds / 1000

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls.parse, serialization=core_schema.plain_serializer_function_ser_schema(str)
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {
            "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": r"^\d+(ms|s|m|h|d)?$"}],
            "description": "a duration: '500ms', '5s', '30m', '12h', '1d'; a bare number is seconds",
        }


def _check_size(value: Any) -> int:
    """Table sizes such as `100k` or `1m`, as HAProxy writes them."""
    if isinstance(value, bool):
        raise ValueError("must be a count such as 20000 or '100k'")
    if isinstance(value, int):
        n = value
    elif isinstance(value, str) and (m := re.fullmatch(r"\s*(\d+)\s*([kKmM]?)\s*", value)):
        n = int(m.group(1)) * {"": 1, "k": 1000, "m": 1_000_000}[m.group(2).lower()]
    else:
        raise ValueError(f"{value!r} is not a count: write a number, or one with k or m ('100k')")
    if not 1 <= n <= 100_000_000:
        raise ValueError(f"{n} is out of range: use 1 to 100m entries")
    return n


Size = Annotated[int, BeforeValidator(_check_size), PlainSerializer(int)]


# --- secrets -----------------------------------------------------------------------------------------

SECRET_PLACEHOLDER = "********"
MAX_SECRET = 1024  # a password or key; like every text of the model, bounded (model/limits.py)
"""What a secret is shown as wherever the configuration is shown or dumped for people; written back, it means
'keep the stored secret' (model/secrets.py `resolve`)."""

REVEAL = {"secrets": "reveal"}
"""Serialization context that dumps secrets as their values: `model_dump(mode="json", context=REVEAL)`. Only the
parts that need the value use it: the secret store, HA configuration sync, the health probes."""

MARK = {"secrets": "mark"}
"""Serialization context that dumps a secret as a mark of its value (model/secrets.py `mark`): two dumps can be
compared (a diff sees that a secret changed) without either holding it."""


class Secret:
    """A secret of the configuration (a password): kept in the model, never shown.

    `str()`, `repr()` and every dump show SECRET_PLACEHOLDER unless the dump asks for the value (REVEAL);
    `reveal()` gives it to the code that needs it (a health probe logging in). Two secrets are equal when
    their values are, so a changed password is a changed model.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself: for the engines and probes that use it, never for a person."""
        return self._value

    @property
    def is_placeholder(self) -> bool:
        """Written as SECRET_PLACEHOLDER: 'keep the stored secret', not a value."""
        return self._value == SECRET_PLACEHOLDER

    def __str__(self) -> str:
        return SECRET_PLACEHOLDER

    def __repr__(self) -> str:
        return f"Secret({SECRET_PLACEHOLDER!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)

    @classmethod
    def parse(cls, value: Any) -> "Secret":
        # the messages never quote the value: a problem is shown to whoever sent it, and logged
        if isinstance(value, Secret):
            return value
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValueError("must be text")
        text = str(value)
        if len(text) > MAX_SECRET:
            raise ValueError(f"at most {MAX_SECRET:,} characters (this one has {len(text):,}): shorten it")
        if _CONTROL_RE.search(text):
            raise ValueError("must not contain control characters (newlines, tabs, NUL)")
        return cls(text)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls.parse,
            serialization=core_schema.plain_serializer_function_ser_schema(
                _dump_secret, info_arg=True, return_schema=core_schema.str_schema()
            ),
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {
            "type": "string",
            "format": "password",
            "writeOnly": True,
            "maxLength": MAX_SECRET,
            "description": f"a secret: shown as {SECRET_PLACEHOLDER!r}; sent back as {SECRET_PLACEHOLDER!r}, the stored one is kept",
        }


_MARK_KEY = os.urandom(32)  # marks are compared within one process only: a fresh key each start
SECRET_MARK_PREFIX = "\x00secret:"


def secret_mark(value: str) -> str:
    """A mark of a secret's value: equal values, equal marks; the value cannot be read back from it."""
    return SECRET_MARK_PREFIX + hmac.new(_MARK_KEY, value.encode(), "sha256").hexdigest()


def _dump_secret(value: Secret, info: Any) -> str:
    context = info.context if isinstance(info.context, dict) else {}
    how = context.get("secrets")
    if how == "reveal":
        return value.reveal()
    if how == "mark":
        return secret_mark(value.reveal())
    return SECRET_PLACEHOLDER
