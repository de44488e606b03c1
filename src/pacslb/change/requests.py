"""The one request schema of a change, shared by every door: the controller API (the CLI), the management API
(and the WebUI behind it) and, for what it carries, the HA peer link. Each door adds only what it alone
knows: the controller API lets the CLI name an `author`; the management API takes the author from the
logged-in user and never from the body."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from ..model.config import RealServerState

MAX_MESSAGE = 2000


class ChangeRequest(BaseModel):
    message: str | None = Field(default=None, max_length=MAX_MESSAGE, description="why (recorded in the revision)")
    base_revision: int | None = Field(
        default=None,
        description="the revision this change is based on (`revision` of GET /api/v1/config): refused with 409, changing "
        "nothing, when another change landed since. The management API also takes it as an If-Match header and needs "
        "one of them for configuration writes (428 without); runtime control, rollbacks and WAF exclusions may omit it",
    )


class ConfigChange(ChangeRequest):
    config: dict[str, Any] = Field(description="the whole configuration, as GET /api/v1/config answers it")
    dry_run: bool = Field(default=False, description="validate, plan and let every engine check it; change nothing")


class StateChange(ChangeRequest):
    state: RealServerState
    all: bool = Field(default=False, description="every virtual service this real server (address and port) serves")


class WeightChange(ChangeRequest):
    weight: int = Field(ge=0, le=256)


class RollbackChange(ChangeRequest):
    dry_run: bool = False
