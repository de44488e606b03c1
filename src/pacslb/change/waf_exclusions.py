"""One exclusion for a WAF false positive, as a change through the front door (change/service.py): a revision.

The request's schema and the edit, shared by the controller's API (`pacslb waf exclude`) and the management API
(POST /api/v1/waf/exclusions, the WebUI's button); the exclusion itself is validated as part of the configuration.
"""

from __future__ import annotations

from typing import Any, Callable

from pydantic import BaseModel, Field

from ..model.waf import add_exclusion
from .result import Outcome
from .service import EditError


class ExclusionRequest(BaseModel):
    policy: str = Field(description="the WAF policy: a service's name, or SERVICE.RULE for a rule's own policy")
    exclusion: dict[str, Any] = Field(
        description="a WafExclusion (docs/configuration.md): rule_ids or tags, and optionally path_begins, parameter or "
        "header, and reason"
    )
    base_revision: int | None = Field(default=None, description="refused when another change landed since")
    message: str | None = Field(default=None, max_length=500)


def exclusion_edit(request: ExclusionRequest) -> Callable[[dict[str, Any]], None]:
    """The edit of the running configuration's data that adds the exclusion."""

    def edit(data: dict[str, Any]) -> None:
        try:
            add_exclusion(data, request.policy, dict(request.exclusion))
        except LookupError as exc:
            raise EditError(Outcome.NOT_FOUND, str(exc)) from None

    return edit


def exclusion_message(request: ExclusionRequest) -> str:
    what = ", ".join(map(str, request.exclusion.get("rule_ids") or [])) or ", ".join(request.exclusion.get("tags") or [])
    return request.message or f"WAF exclusion of {what or 'rules'} in {request.policy}"
