"""The change front door refuses configured files in the state directory (but certs/) and untrusted scripts, and
keeps settings.files to the host's doors; in-memory engines stand in for the real ones."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest

from pacslb import pki
from pacslb.change.result import Outcome
from pacslb.change.service import Changes, Origin, Running
from pacslb.engines.contract import EngineState, Prepared
from pacslb.model import Config, load_text
from pacslb.paths import StatePaths
from support.accounts import system_user

TEXT = """version: 1
{settings}
virtual_services:
  - name: web
    mode: layer7-http
    listen: [{{address: 127.0.0.1, port: 8080}}]
    real_servers: [{{name: rs1, address: 127.0.0.2, port: 80}}]
    {extra}
"""


class MemoryEngine:
    """An engine of the contract that only remembers what it runs."""

    name = "haproxy"

    def __init__(self, config: Config) -> None:
        self.runs = config.model_dump_json()
        self.planned = 0

    def wanted(self, config: Config) -> bool:
        return True

    def plan(self, old: Config, new: Config, base_dir: Path) -> Prepared:
        self.planned += 1
        text = new.model_dump_json()
        return Prepared(self.name, text != self.runs, hashlib.sha256(text.encode()).hexdigest(), [], data={"new": text})

    async def check(self, prepared: Prepared) -> None:
        pass

    async def commit(self, prepared: Prepared) -> None:
        self.runs = prepared.data["new"]

    async def undo(self, prepared: Prepared) -> None:
        pass

    def discard(self, prepared: Prepared) -> None:
        pass

    def applied_digest(self) -> str | None:
        return hashlib.sha256(self.runs.encode()).hexdigest()

    def observe(self) -> EngineState:
        return EngineState(self.name, True)


@pytest.fixture
def door(tmp_path: Path):
    """The front door with the configuration file in tmp_path and the state directory in tmp_path/state (inside the
    configuration's folder, so that only the front door's own refusal keeps the state directory out)."""
    config = load_text(TEXT.format(settings="", extra="")).config
    paths = StatePaths(tmp_path / "state")
    key = paths.management_certificate
    pki.write_pem(key, pki.self_signed("management", ["127.0.0.1"]).bundle())
    key.chmod(0o644)
    engine = MemoryEngine(config)
    changes = Changes(paths, Running(config, tmp_path, tmp_path / "pacslb.yaml"), [engine], asyncio.Lock())
    first = changes.store.add(config.model_dump_json(), "", author="setup", message="first", kind="file", parent=None)
    changes.store.mark_applied(first.id)
    return changes, engine, paths


API = Origin("admin", "session", "127.0.0.1")


async def test_the_management_key_as_maintenance_page_is_refused_through_every_door(door, tmp_path: Path):
    changes, engine, paths = door
    page = f"fallback: {{maintenance_page: true, page: {paths.management_certificate}}}"
    result = await changes.apply(text=TEXT.format(settings="", extra=page), origin=API)
    assert result.outcome is Outcome.INVALID and engine.planned == 0
    (problem,) = result.problems
    assert problem.path == "virtual_services[web].fallback.page"
    assert problem.message.startswith(f"{paths.management_certificate} is in the appliance's state directory {paths.root}")
    # the controller's door may name another base directory: the state directory is no way round
    result = await changes.apply(text=TEXT.format(settings="", extra="fallback: {maintenance_page: true, page: server.pem}"),
                                 base_dir=paths.management_dir, origin=Origin("root", "cli"))  # fmt: skip
    assert result.outcome is Outcome.INVALID and "is in the appliance's state directory" in result.problems[0].message

    # an edit of the running data (the API's and WebUI's forms) goes the same way
    def edit(data):
        data["virtual_services"][0]["fallback"] = {"maintenance_page": True, "page": str(paths.management_certificate)}

    result = await changes.apply(edit=edit, origin=API)
    assert result.outcome is Outcome.INVALID and result.problems[0].path == "virtual_services[web].fallback.page"
    assert changes.store.current_id() == 1 and engine.planned == 0


async def test_uploaded_certificates_in_certs_are_accepted(door):
    changes, engine, paths = door
    pki.write_pem(paths.certs_dir / "site.pem", pki.self_signed("site", ["127.0.0.1"]).bundle())
    tls = f"tls: {{certificates: [{paths.certs_dir / 'site.pem'}]}}"
    result = await changes.apply(text=TEXT.format(settings="", extra=tls), origin=API)
    assert result.outcome is Outcome.APPLIED, (result.message, [str(p) for p in result.problems])


async def test_settings_files_change_only_through_the_hosts_doors(door, tmp_path: Path):
    changes, engine, paths = door
    widened = TEXT.format(settings="settings: {files: {allowed_directories: [/]}}", extra="")
    result = await changes.apply(text=widened, origin=API)
    assert result.outcome is Outcome.INVALID
    (problem,) = result.problems
    assert problem.path == "settings.files.allowed_directories"
    assert (
        problem.message.startswith("is changed only on the appliance's host") and "[., /etc/pacslb, /etc/ssl]" in problem.message
    )
    assert changes.store.current_id() == 1
    result = await changes.apply(text=widened, origin=Origin("root", "cli"))
    assert result.outcome is Outcome.APPLIED, result.message
    # and once set on the host, the API's changes keep it (an unrelated change is no change of it)
    result = await changes.apply(text=widened.replace("port: 8080", "port: 8081"), origin=API)
    assert result.outcome is Outcome.APPLIED, result.message


async def test_a_script_in_a_directory_of_another_user_is_refused_at_apply_time(door, tmp_path: Path):
    changes, engine, paths = door
    with system_user("apply") as (name, uid):
        theirs = tmp_path / "theirs"
        theirs.mkdir(mode=0o755)
        script = theirs / "check.sh"
        script.write_text("#!/bin/sh\nexit 0\n")
        script.chmod(0o755)
        os.chown(theirs, uid, -1)
        check = f"health_check: {{type: external, script: {script}}}"
        result = await changes.apply(text=TEXT.format(settings="", extra=check), origin=API)
        assert result.outcome is Outcome.INVALID
        (problem,) = result.problems
        assert problem.path == "virtual_services[web].health_check.script"
        assert problem.message.startswith(
            f"{theirs} is owned by uid {uid} ({name}), not root: external check scripts run as root"
        )
        os.chown(theirs, 0, -1)
        result = await changes.apply(text=TEXT.format(settings="", extra=check), origin=API)
        assert result.outcome is Outcome.APPLIED, [str(p) for p in result.problems]
