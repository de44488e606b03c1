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


# --- parsing limits: nesting and size ------------------------------------------------------------


def _nested(levels: int) -> list:
    inner: list = []
    for _ in range(levels - 1):
        inner = [inner]
    return inner


def test_documents_nested_5000_levels_and_over_size_bodies_are_refused_changing_nothing(api):
    from pacslb.model.limits import MAX_CONFIG_BYTES, MAX_DEPTH

    admin = api.login("admin")
    before = _snapshot(api)
    current = admin.get("/api/v1/config").json()
    deep = b'{"config": ' + b"[" * 5000 + b"]" * 5000 + b', "base_revision": %d}' % current["revision"]
    response = admin.put("/api/v1/config", content=deep, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert "nests deeper than" in response.json()["message"]
    # under the body's bound, over the model's: the model names the field
    data = current["config"]
    data["virtual_services"][0]["description"] = _nested(MAX_DEPTH - 2)  # 3 levels above it: 33 in all, 34 in the body
    response = admin.put("/api/v1/config", json={"config": data, "base_revision": current["revision"]})
    assert response.status_code == 422, response.text
    (problem,) = response.json()["problems"]
    assert problem["path"].startswith("virtual_services[web].description[0]") and "nested deeper" in problem["message"]
    # over the body limit of the management API
    response = admin.put("/api/v1/config", content=b" " * (9 * MiB), headers={"content-type": "application/json"})
    assert response.status_code == 413 and "larger than" in response.json()["message"], response.text

    # the controller's socket: the same bodies
    deep_apply = b'{"config": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    response = api.appliance.api("POST", "/apply", content=deep_apply, headers={"content-type": "application/json"})
    assert response.status_code == 422 and "nests deeper than" in response.text, response.text

    # pacslb apply: YAML 5,000 levels deep, and a file over the size bound; exit 2, the controller untouched
    folder = api.appliance.config.parent
    for name, text, says in (
        ("deep.yaml", "version: 1\nsettings: " + "[" * 5000 + "]" * 5000 + "\n", f"nests deeper than {MAX_DEPTH} levels"),
        ("huge.yaml", "#" * (MAX_CONFIG_BYTES + 1), f"may have at most {MAX_CONFIG_BYTES}"),
    ):
        (folder / name).write_text(text)
        done = api.appliance.cli("apply", "-c", str(folder / name), timeout=120)
        assert done.returncode == 2 and says in done.stderr, (done.stdout, done.stderr)
        assert "Traceback" not in done.stderr and "no controller answers" not in done.stderr
        (folder / name).unlink()
    _unchanged(api, before)


# --- model limits through the API ----------------------------------------------------------------


def test_the_10_mb_description_and_one_over_the_bound_are_refused_by_the_api(api):
    from pacslb.model.limits import MAX_DESCRIPTION

    admin = api.login("admin")
    before = _snapshot(api)
    current = admin.get("/api/v1/config").json()
    data = current["config"]
    web = next(vs for vs in data["virtual_services"] if vs["name"] == "web")
    web["description"] = "x" * (10 * 1024 * 1024)
    response = admin.put("/api/v1/config", json={"config": data, "base_revision": current["revision"]})
    assert response.status_code == 413 and "larger than 8192 KiB" in response.json()["message"], response.text
    web["description"] = "x" * (MAX_DESCRIPTION + 1)
    response = admin.put("/api/v1/config", json={"config": data, "base_revision": current["revision"]})
    assert response.status_code == 422, response.text
    assert [(p["path"], p["message"]) for p in response.json()["problems"]] == [
        ("virtual_services[web].description", f"at most {MAX_DESCRIPTION:,} characters (this one has {MAX_DESCRIPTION + 1:,}): "
                                              "shorten it")]  # fmt: skip
    _unchanged(api, before)
    web["description"] = "x" * MAX_DESCRIPTION  # at the bound: applied
    response = admin.put("/api/v1/config", json={"config": data, "base_revision": current["revision"]})
    assert response.status_code == 200, response.text
    assert admin.get("/api/v1/config").json()["config"]["virtual_services"][0]["description"] == "x" * MAX_DESCRIPTION
