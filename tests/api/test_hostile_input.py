"""Hostile input against a real appliance (issue 13; issue 16, API limits): files a configuration names that
are devices, FIFOs or huge; documents nested 5,000 levels; bodies and fields over their limits. Each is
refused through `pacslb apply` and the management API with the field named, and changes nothing that runs:
same revision, same haproxy.cfg, no file left behind in the state directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

CERT_FIELD = "virtual_services[secure].tls.certificates[0]"
MiB = 1024 * 1024


def _hostile_files(folder: Path) -> dict[str, Path]:
    """In the configuration's folder (an allowed directory): a FIFO, a 2 MiB file and a link to /dev/zero."""
    files = {"fifo": folder / "hostile-fifo.pem", "2MiB": folder / "hostile-big.pem", "link": folder / "hostile-zero.pem"}
    for path in files.values():
        if path.is_symlink() or path.exists():
            path.unlink()
    os.mkfifo(files["fifo"])
    files["2MiB"].write_bytes(b"-----BEGIN CERTIFICATE-----\n" + b"A" * 2 * MiB)
    files["link"].symlink_to("/dev/zero")
    return files


SAYS = {
    "fifo": "is not a regular file (a device, FIFO or socket)",
    "2MiB": "a PEM file may have at most 1048576",
    "link": "(which resolves to /dev/zero) is not in an allowed directory",
}


def _snapshot(api) -> tuple[int, str, set[str]]:
    """What runs and what the state directory holds: revision, haproxy.cfg, every file name (logs and SQLite
    journals aside, which change with every request)."""
    state = api.appliance.state_dir
    names = {
        str(p.relative_to(state)) for p in state.rglob("*")
        if not p.name.endswith((".log", "-wal", "-shm", "-journal")) and "log" not in p.parent.name
    }  # fmt: skip
    return api.revision(), (state / "haproxy" / "haproxy.cfg").read_text(), names


def _unchanged(api, before: tuple[int, str, set[str]]) -> None:
    after = _snapshot(api)
    assert after[0] == before[0], "no revision was made"
    assert after[1] == before[1], "haproxy.cfg is the same"
    assert after[2] == before[2], f"no file left behind: {sorted(after[2] ^ before[2])}"
    assert not [p for p in api.appliance.state_dir.rglob("*.tmp")], "no temporary file"


def test_a_hostile_certificate_is_refused_by_apply_and_by_the_api_changing_nothing(api):
    folder = api.appliance.config.parent
    hostile = _hostile_files(folder)
    admin = api.login("admin")
    before = _snapshot(api)
    text = api.appliance.config.read_text()
    for kind, path in hostile.items():
        changed = folder / f"hostile-{kind}.yaml"
        changed.write_text(text.replace(str(api.cert_file), str(path)))
        done = api.appliance.cli("apply", "-c", str(changed), timeout=120)
        assert done.returncode == 2, (kind, done.stdout, done.stderr)
        assert f"{CERT_FIELD}: " in done.stdout + done.stderr and SAYS[kind] in done.stdout + done.stderr, done
        assert "no controller answers" not in done.stderr and "Traceback" not in done.stderr
        changed.unlink()

        current = admin.get("/api/v1/config").json()
        secure = next(vs for vs in current["config"]["virtual_services"] if vs["name"] == "secure")
        secure["tls"]["certificates"] = [str(path)]
        response = admin.put("/api/v1/config", json={"config": current["config"], "base_revision": current["revision"]})
        assert response.status_code == 422, response.text
        errors = [p for p in response.json()["problems"] if p["severity"] == "error"]
        assert [p["path"] for p in errors] == [CERT_FIELD] and SAYS[kind] in errors[0]["message"], errors
    _unchanged(api, before)
    for path in hostile.values():
        path.unlink()
