"""The balance service's file: the reading schedule and the exam-effort table, validated with field paths.

    timezone: Europe/Paris            # the schedule's clock (IANA name)
    escalation_lead_minutes: 60
    priorities:                       # optional; STAT 60 min, expedited 4 h, routine 12 h when left out
      - {name: STAT, max_wait_minutes: 60}
    effort:                           # expected reading effort per modality (and body part), with its constraints
      - {modality: MR, body_part: KNEE, effort: 1.5, subspecialty: msk}
      - {modality: MG, effort: 0.75, credential: MQSA}
      - {modality: CT, effort: 1.3}
    readers:
      - {name: ada, credentials: [MQSA], subspecialties: [neuro], sites: [north], max_queued: 2}
    shifts:
      - {reader: ada, days: [mon, tue, wed, thu, fri], start: "08:00", end: "16:00", capacity: 6.0, breaks: ["12:00-12:30"]}
    ups: {host: 10.0.0.5, port: 104, called_ae: WORKLIST}   # optional: DICOM UPS push of each assignment

Capacity comes from this schedule only (no measured speed, no presence): see docs/reading-balance.md.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..model.load import parse_yaml
from ..model.problems import Problem, from_validation_error
from .model import PriorityClass, Reader, Shift

MAX_FILE_BYTES = 1 << 20  # a schedule of a large department is tens of kilobytes
MAX_READERS = 500
MAX_SHIFTS = 5000
MAX_EFFORT_ROWS = 2000
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
Word = Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9_.\- ]*$")]
CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PriorityItem(Strict):
    name: Name
    max_wait_minutes: float = Field(gt=0, le=7 * 24 * 60)


class EffortRow(Strict):
    """Expected effort of one kind of exam; `body_part` empty matches any body part of the modality."""

    modality: Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[A-Z0-9]+$")]
    body_part: Word = ""
    effort: float = Field(gt=0, le=100)
    subspecialty: Word = ""
    credential: Word = ""


class ReaderItem(Strict):
    name: Name
    credentials: list[Word] = Field(default_factory=list, max_length=32)
    subspecialties: list[Word] = Field(default_factory=list, max_length=32)
    sites: list[Word] = Field(default_factory=list, max_length=64)
    max_queued: int = Field(default=2, ge=0, le=50)
    max_outstanding_effort: float = Field(default=0.0, ge=0, le=1000)


class ShiftItem(Strict):
    reader: Name
    days: list[str] = Field(default_factory=lambda: list(DAYS), min_length=1, max_length=7)
    start: str
    end: str
    capacity: float = Field(gt=0, le=100, description="effort per hour the shift is declared to read")
    breaks: list[str] = Field(default_factory=list, max_length=12)

    @field_validator("days")
    @classmethod
    def _days(cls, days: list[str]) -> list[str]:
        for day in days:
            if day not in DAYS:
                raise ValueError(f"{day!r} is not a day; use {', '.join(DAYS)}")
        return days

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not CLOCK.match(value):
            raise ValueError(f"{value!r} is not a time of day; write HH:MM, e.g. 08:00")
        return value

    @field_validator("breaks")
    @classmethod
    def _breaks(cls, breaks: list[str]) -> list[str]:
        for item in breaks:
            parts = item.split("-")
            if len(parts) != 2 or not all(CLOCK.match(p.strip()) for p in parts):
                raise ValueError(f"{item!r} is not a break; write HH:MM-HH:MM, e.g. 12:00-12:30")
        return breaks


class UpsPush(Strict):
    """Optional: push each assignment as a DICOM UPS workitem (N-CREATE) to this worklist manager."""

    host: str = Field(min_length=1, max_length=253)
    port: int = Field(ge=1, le=65535)
    called_ae: str = Field(min_length=1, max_length=16, pattern=r"^[ -~]*[!-~][ -~]*$")
    calling_ae: str = Field(default="PACSLB", min_length=1, max_length=16, pattern=r"^[ -~]*[!-~][ -~]*$")
    timeout_seconds: float = Field(default=10, gt=0, le=120)


class BalanceConfig(Strict):
    timezone: str = "UTC"
    escalation_lead_minutes: float = Field(default=60, ge=0, le=24 * 60)
    default_effort: float = Field(default=1.0, gt=0, le=100, description="effort of a modality missing from the table")
    priorities: list[PriorityItem] = Field(default_factory=list, max_length=8)
    effort: list[EffortRow] = Field(default_factory=list, max_length=MAX_EFFORT_ROWS)
    readers: list[ReaderItem] = Field(min_length=1, max_length=MAX_READERS)
    shifts: list[ShiftItem] = Field(default_factory=list, max_length=MAX_SHIFTS)
    ups: UpsPush | None = None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as UTC or Europe/Paris") from None
        return value


def minutes(clock: str) -> int:
    hours, mins = clock.strip().split(":")
    return int(hours) * 60 + int(mins)


def cross_check(config: BalanceConfig) -> list[Problem]:
    """What one field cannot say alone: unique names, shifts of known readers, breaks inside their shift."""
    problems = []
    seen: set[str] = set()
    for reader in config.readers:
        if reader.name in seen:
            problems.append(Problem(f"readers[{reader.name}].name", "two readers have this name; names must be unique"))
        seen.add(reader.name)
    names = [p.name for p in config.priorities]
    if len(set(names)) != len(names):
        problems.append(Problem("priorities", "a priority class is named twice"))
    for i, shift in enumerate(config.shifts):
        path = f"shifts[{i}]"
        if shift.reader not in seen:
            problems.append(Problem(f"{path}.reader", f"no reader {shift.reader!r}; add it under readers or fix the name"))
        start, end = minutes(shift.start), minutes(shift.end)
        if start == end:
            problems.append(
                Problem(
                    f"{path}.end", "the shift ends when it starts; give a later end (an end before the start runs past midnight)"
                )
            )
        length = (end - start) % (24 * 60)
        for j, item in enumerate(shift.breaks):
            b_start, b_end = (minutes(p) for p in item.split("-"))
            offset, b_length = (b_start - start) % (24 * 60), (b_end - b_start) % (24 * 60)
            if b_length == 0 or offset + b_length > length:
                problems.append(Problem(f"{path}.breaks[{j}]", f"{item} is not inside the shift {shift.start}-{shift.end}"))
    return problems


def load_config(path: Path) -> tuple[BalanceConfig | None, list[Problem]]:
    """Read and validate the file; (config, []) or (None, problems) with field paths."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return None, [Problem("", f"{path} is {size} bytes; the limit is {MAX_FILE_BYTES} (1 MiB)")]
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem("", f"cannot read {path}: {exc}")]
    return load_text(text)


def load_text(text: str) -> tuple[BalanceConfig | None, list[Problem]]:
    """Validate YAML text (see load_config)."""
    if len(text.encode("utf-8")) > MAX_FILE_BYTES:
        return None, [Problem("", f"the file is larger than {MAX_FILE_BYTES} bytes (1 MiB)")]
    data, problems = parse_yaml(text)
    if problems:
        return None, problems
    if not isinstance(data, dict):
        return None, [Problem("", "the file must be a mapping with readers, shifts and effort")]
    try:
        config = BalanceConfig.model_validate(data)
    except ValidationError as exc:
        return None, from_validation_error(exc, data, BalanceConfig)
    problems = cross_check(config)
    return (None, problems) if problems else (config, [])


# -- from the file to the scheduler's objects (pure) ---------------------------------------------------------


def priority_classes(config: BalanceConfig) -> tuple[PriorityClass, ...]:
    """The configured classes in the order given (rank = position), or the defaults."""
    from .model import DEFAULT_CLASSES

    if not config.priorities:
        return DEFAULT_CLASSES
    return tuple(PriorityClass(p.name, i, p.max_wait_minutes * 60) for i, p in enumerate(config.priorities))


def readers(config: BalanceConfig) -> list[Reader]:
    return [
        Reader(
            r.name,
            frozenset(r.credentials),
            frozenset(r.subspecialties),
            frozenset(r.sites),
            r.max_queued,
            r.max_outstanding_effort,
        )
        for r in config.readers
    ]


def shifts_between(config: BalanceConfig, first: dt.date, last: dt.date) -> list[Shift]:
    """The declared shifts of every day from `first` to `last` (inclusive), as epoch seconds in the config's time zone."""
    zone = ZoneInfo(config.timezone)
    out = []
    day = first
    while day <= last:
        weekday = DAYS[day.weekday()]
        midnight = dt.datetime.combine(day, dt.time(), zone)
        for item in config.shifts:
            if weekday not in item.days:
                continue
            start = minutes(item.start)
            length = (minutes(item.end) - start) % (24 * 60)
            begin = midnight + dt.timedelta(minutes=start)
            breaks = []
            for b in item.breaks:
                b_start, b_end = (minutes(p) for p in b.split("-"))
                offset = (b_start - start) % (24 * 60)
                b_begin = begin + dt.timedelta(minutes=offset)
                breaks.append((b_begin.timestamp(), b_begin.timestamp() + ((b_end - b_start) % (24 * 60)) * 60))
            out.append(Shift(item.reader, begin.timestamp(), begin.timestamp() + length * 60, item.capacity, tuple(breaks)))
        day += dt.timedelta(days=1)
    return out


def effort_of(config: BalanceConfig, modality: str, body_part: str) -> EffortRow:
    """The table row for an exam: modality and body part, else the modality's row without body part, else the default."""
    modality, body_part = modality.upper(), body_part.upper()
    fallback = None
    for row in config.effort:
        if row.modality == modality and row.body_part.upper() == body_part and body_part:
            return row
        if row.modality == modality and not row.body_part and fallback is None:
            fallback = row
    return fallback or EffortRow(modality=modality or "OT", effort=config.default_effort)
