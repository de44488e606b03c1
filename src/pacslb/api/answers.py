"""The schemas of the management API's 2xx answers, as the routes build them (for the OpenAPI document: the
routes answer plain JSON; tests/api/test_openapi_contract.py checks every answer against these).

Each names the fields that are always there; an answer may carry more (additive changes do not break clients).
The configuration itself (`config`, `virtual_service`...) is described by the model: docs/configuration.md
and `pacslb schema`.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from .contract import Answer, ProblemItem

Obj = dict[str, Any]


class ChangeAnswer(Answer):
    """What a change answers (applied, unchanged, dry-run; the same body with 4xx: see ErrorBody)."""

    outcome: str = Field(description="applied, unchanged or dry-run (refusals: invalid, conflict, refused, not-found)")
    message: str
    plan: Obj | None = Field(default=None, description="how it was applied: runtime operations or a reload")
    revision: Obj | None = Field(default=None, description="the revision it made (a summary)")
    parent: int | None = None
    problems: list[ProblemItem] = Field(default_factory=list)
    messages: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    engine: Obj = Field(default_factory=dict)
    engines: dict[str, list[str]] = Field(default_factory=dict)
    current_revision: int | None = Field(default=None, description="the revision that runs after it")


class ConfigAnswer(Answer):
    revision: int | None = Field(description="the revision that runs: the base_revision of the next write")
    config: Obj


class ServicesAnswer(Answer):
    revision: int | None
    virtual_services: list[Obj]


class ServiceAnswer(Answer):
    revision: int | None
    virtual_service: Obj


class RealServersAnswer(Answer):
    revision: int | None
    real_servers: list[Obj]


class RealServerAnswer(Answer):
    revision: int | None
    real_server: Obj


class RulesAnswer(Answer):
    revision: int | None
    rules: list[Obj]


class RuleAnswer(Answer):
    revision: int | None
    rule: Obj


class HealthCheckAnswer(Answer):
    revision: int | None
    health_check: Obj


# --- users, sessions, keys ------------------------------------------------------------------------------


class LoginAnswer(Answer):
    username: str
    role: str
    csrf_token: str = Field(description="send it in X-CSRF-Token with every unsafe request of this session")
    session_timeout: float
    session_lifetime: float


class LogoutAnswer(Answer):
    logged_out: bool


class MeAnswer(Answer):
    username: str
    role: str
    via: str = Field(description="session or api-key")
    csrf_token: str | None


class UserInfo(Answer):
    username: str
    role: str
    created_at: float
    changed_at: float


class UsersAnswer(Answer):
    users: list[UserInfo]


class UserAnswer(Answer):
    user: UserInfo


class DeletedAnswer(Answer):
    deleted: str


class RoleAnswer(Answer):
    username: str
    role: str


class PasswordAnswer(Answer):
    username: str
    changed: bool
    api_keys_deleted: int
    csrf_token: str | None = Field(default=None, description="your own password, in a session: the renewed session's token")


class UnblockAnswer(Answer):
    username: str
    unblocked: bool
    addresses: int


class LoginBlock(Answer):
    username: str
    address: str
    failures: int
    retry_after: int


class LoginBlocksAnswer(Answer):
    blocked: list[LoginBlock]


class ApiKeyInfo(Answer):
    id: str
    username: str
    name: str
    created_at: float
    last_used: float | None
    expires_at: float | None


class ApiKeysAnswer(Answer):
    api_keys: list[ApiKeyInfo]


class NewApiKeyAnswer(Answer):
    api_key: ApiKeyInfo
    token: str = Field(description="shown once: Authorization: Bearer <token>")
    note: str


class AuditAnswer(Answer):
    events: list[Obj]


# --- status, revisions, logs ------------------------------------------------------------------------------


class HealthAnswer(Answer):
    ok: bool
    reason: str


class RevisionSummary(Answer):
    id: int
    created_at: float
    author: str
    kind: str
    parent: int | None
    status: str
    applied: bool


class RevisionsAnswer(Answer):
    current: int | None
    revisions: list[RevisionSummary]


class RevisionAnswer(RevisionSummary):
    config: Obj | None


class DiffAnswer(Answer):
    from_: RevisionSummary | None = Field(alias="from")
    to: RevisionSummary
    changes: list[Obj]


class LogAnswer(Answer):
    log: str
    file: str
    lines: list[str]


# --- certificates ------------------------------------------------------------------------------------------


class CertificateInfo(Answer):
    name: str
    file: str
    used_by: list[str]
    error: str | None = Field(default=None, description="when the file cannot be read as a certificate")


class CertificatesAnswer(Answer):
    certificates: list[CertificateInfo]


class CertificateStored(Answer):
    outcome: str
    message: str
    certificate: CertificateInfo
    hot_swapped: list[str]


class OutcomeAnswer(Answer):
    outcome: str
    message: str


class CSRAnswer(Answer):
    name: str
    csr: str = Field(description="PEM certificate signing request")
    next: str


# --- the rest ---------------------------------------------------------------------------------------------


class RestoreAnswer(ChangeAnswer):
    restored: Obj = Field(description="what the backup held: revisions, users and API keys restored")


class AlertsAnswer(Answer):
    receivers: list[Obj]
    recent: list[Obj]


class AlertTestAnswer(Answer):
    results: list[Obj] = Field(description="per receiver: receiver, ok, error")


class VerifyAnswer(Answer):
    ok: bool
    counts: dict[str, int]
    routes: list[Obj]


class WafEventsAnswer(Answer):
    events: list[Obj]
    summary: Obj


class GslbAnswer(Answer):
    pass


class HaStatusAnswer(Answer):
    node: Obj
    peer: Obj
    keepalived: Obj
    split_brain: Obj | None = Field(description="the latest split brain reported (both nodes master), or null")
    transitions: list[Obj]


class PersistenceClearedAnswer(Answer):
    """A virtual service's persistence table cleared (src/pacslb/persistence.py)."""

    outcome: str = Field(description="cleared")
    service: str
    table: str = Field(description="HAProxy's stick table")
    cleared: int = Field(description="entries removed")
    remaining: int = Field(description="entries an open connection still uses: HAProxy keeps them until it ends")
    message: str


class HaActionAnswer(Answer):
    ok: bool
    message: str


class StopAnswer(Answer):
    stopping: bool
    controller_pid: int


GZIP = {"application/gzip": {"schema": {"type": "string", "format": "binary"}}}
BACKUP = {**GZIP, "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
PROMETHEUS = {"text/plain": {"schema": {"type": "string"}}}
