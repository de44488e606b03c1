"""Once per state directory: revisions recorded before secrets were kept apart hold them in clear. At
startup (change/service.py) they are moved: each revision's secrets into the secret store (store/secrets.py),
by revision and path, and the revision rewritten with the placeholder (its JSON, its YAML, the values of
its plan); then revisions.sqlite is rebuilt, so that no old page keeps them.

A revision that no longer validates cannot say where its secrets are: the values of its secret fields
are replaced in its JSON, its YAML is dropped (readers take the JSON), and nothing is stored for it (a
rollback to it is refused by validation anyway).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Callable

from ..model import Config, validate_data
from ..model.diff import Change
from ..model.secrets import put, secret_field_names, stored_form
from ..model.types import SECRET_PLACEHOLDER
from ..store import RevisionStore, SecretStore

log = logging.getLogger("pacslb.controller")

META_SECRETS_APART = "secrets_apart"

_JSON_STRING = r'"(?:[^"\\]|\\.)*"'


def _clear_secrets(names: set[str]) -> re.Pattern[str]:
    """A secret field in a revision's JSON with a value that is not the placeholder."""
    fields = "|".join(re.escape(n) for n in sorted(names))
    return re.compile(rf'"({fields})":(?!"{re.escape(SECRET_PLACEHOLDER)}")({_JSON_STRING})')


def _scrub_change(change: dict[str, Any], secret_paths: set[str]) -> dict[str, Any]:
    """One change of a stored plan with the values of secrets taken out."""
    path = str(change.get("path", ""))
    if path in secret_paths:
        shown = [None if change.get(k) is None else SECRET_PLACEHOLDER for k in ("old", "new")]
        secret = Change(path, "changed", shown[0], shown[1], secret=True)
        return secret.as_dict()
    for key in ("old", "new"):
        value = change.get(key)
        if isinstance(value, (dict, list)):
            for secret_path in secret_paths:
                if secret_path.startswith(path + ".") or secret_path.startswith(path + "["):
                    put(value, secret_path[len(path) :].lstrip("."), SECRET_PLACEHOLDER)
    kind = change.get("kind", "changed")
    change["text"] = str(Change(path, kind, change.get("old"), change.get("new")))
    return change


def _scrub_plan(plan: dict[str, Any] | None, secret_paths: set[str]) -> dict[str, Any] | None:
    if not plan or not isinstance(plan.get("changes"), list):
        return plan
    changes = [_scrub_change(dict(c), secret_paths) for c in plan["changes"] if isinstance(c, dict)]
    text = plan.get("text") if isinstance(plan.get("text"), list) else []
    # the text is "changes:", a line per change, then what the engines did: the middle part is made again
    rest = text[1:]
    while rest and str(rest[0]).startswith("  "):
        rest = rest[1:]
    return {**plan, "changes": changes, "text": ["changes:", *[f"  {c['text']}" for c in changes], *rest]}


def move_secrets_out(store: RevisionStore, secrets: Callable[[], SecretStore], yaml_of: Callable[[Config], str]) -> int:
    """Move the secrets of older revisions out of the revision store (once); the number of revisions rewritten."""
    if store.meta(META_SECRETS_APART):
        return 0
    clear = _clear_secrets(secret_field_names(Config))
    found: dict[int, tuple[Config | None, dict[str, str]]] = {}
    for rev_id in store.ids():
        rev = store.get(rev_id)
        if rev is None or not clear.search(rev.config_json):
            continue
        loaded = validate_data(rev.config_data)
        config = loaded.config if loaded.ok else None
        found[rev_id] = (config, stored_form(config) if config is not None else {})
    # a plan names a secret's values where its revision changed, added or removed it: any revision's plan
    secret_paths = {path for _, values in found.values() for path in values}
    rewritten = 0
    for rev_id in store.ids() if found else []:
        rev = store.get(rev_id)
        if rev is None:
            continue
        plan = _scrub_plan(json.loads(json.dumps(rev.plan)) if rev.plan else None, secret_paths)
        if rev_id in found:
            config, values = found[rev_id]
            if config is not None:
                if values and not secrets().get(rev_id):
                    secrets().put(rev_id, values)
                config_json = config.model_dump_json()
                config_yaml = yaml_of(config) if rev.config_yaml else ""
            else:
                config_json = clear.sub(lambda m: f'"{m[1]}":"{SECRET_PLACEHOLDER}"', rev.config_json)
                config_yaml = ""
        elif plan != rev.plan:
            config_json, config_yaml = rev.config_json, rev.config_yaml
        else:
            continue
        store.rewrite(rev_id, config_json, config_yaml, plan)
        rewritten += 1
    if rewritten:
        store.compact()
        log.warning("moved the secrets of %d older revision(s) out of %s into %s", rewritten, store.path.name,
                    "secrets.sqlite")  # fmt: skip
    store.set_meta(META_SECRETS_APART, True)
    return rewritten
