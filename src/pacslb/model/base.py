"""The base of every class of the configuration model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from .limits import MAX_TEXT


class Strict(BaseModel):
    """Unknown keys are errors, never silently dropped; assignments are validated; every text is bounded (limits.py)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_enum_values=False, str_max_length=MAX_TEXT)
