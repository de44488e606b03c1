"""Files a configuration names (model/files.py): only from settings.files.allowed_directories, never from the
state directory but its certs/, symbolic links resolved first, regular files of bounded size; scripts root's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pacslb import pki
from pacslb.ha import peer_link
from pacslb.model import load_text, validate_data
from pacslb.model.checks import check_files
from pacslb.model.files import MAX_PEM_BYTES, Reserved, named_files, untrusted_script

WEB = """
version: 1
{settings}
virtual_services:
  - name: web
    mode: layer7-http
    listen: [{{address: 192.0.2.1, port: 443}}]
    real_servers: [{{name: rs1, address: 192.0.2.11, port: 80}}]
    {extra}
"""

PAGE = "fallback: {{maintenance_page: true, page: '{}'}}"


def config(extra: str, settings: str = ""):
    loaded = load_text(WEB.format(extra=extra, settings=settings))
    assert loaded.config is not None, [str(p) for p in loaded.problems]
    return loaded.config


def errors(config_, base_dir: Path, reserved: Reserved | None = None) -> list[str]:
    return [str(p) for p in check_files(config_, base_dir, reserved) if p.severity == "error"]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """The configuration file's folder, with a state directory beside it holding the management key."""
    (tmp_path / "site").mkdir()
    key = tmp_path / "state" / "management" / "server.pem"
    key.parent.mkdir(parents=True)
    pki.write_pem(key, pki.self_signed("management", ["127.0.0.1"]).bundle())
    key.chmod(0o644)  # even readable by everyone, it is refused for where it lies
    return tmp_path / "site"


def reserved(site: Path) -> Reserved:
    state = site.parent / "state"
    return Reserved(state, state / "certs")


def test_the_management_key_as_maintenance_page_is_refused_naming_the_field(site: Path):
    key = site.parent / "state" / "management" / "server.pem"
    # the state directory inside an allowed directory (here the configuration file's folder) is still refused
    (p,) = errors(config(PAGE.format(key), settings="settings: {files: {allowed_directories: ['..']}}"), site,
                  reserved(site))  # fmt: skip
    assert p.startswith(f"virtual_services[web].fallback.page: {key} is in the appliance's state directory ")
    assert "put the page in one of settings.files.allowed_directories (.. (" in p
    # outside the allowed directories, it is refused even where the state directory is not known (pacslb validate)
    (p,) = errors(config(PAGE.format(key)), site)
    assert p == (
        f"virtual_services[web].fallback.page: {key} is not in an allowed directory (settings.files.allowed_directories: "
        f". ({site}), /etc/pacslb, /etc/ssl); put the page in one of them, or add its directory to that list in the "
        "configuration file on the appliance's host"
    )


def test_a_symbolic_link_cannot_lead_out_of_an_allowed_directory(site: Path):
    key = site.parent / "state" / "management" / "server.pem"
    (site / "page.html").symlink_to(key)
    (p,) = errors(config(PAGE.format("page.html")), site, reserved(site))
    assert f"{site / 'page.html'} (which resolves to {key}) is in the appliance's state directory" in p
    (site / "passwd.html").symlink_to("/etc/passwd")
    (p,) = errors(config(PAGE.format("passwd.html")), site, reserved(site))
    assert "(which resolves to /etc/passwd) is not in an allowed directory" in p


def test_allowed_directories_widen_and_relative_entries_are_read_from_the_configuration_folder(site: Path):
    pages = site.parent / "pages"
    pages.mkdir()
    (pages / "down.html").write_text("<p>down</p>")
    (pages / "down.html").chmod(0o644)
    (p,) = errors(config(PAGE.format(pages / "down.html")), site)
    assert "is not in an allowed directory" in p
    assert (
        errors(config(PAGE.format(pages / "down.html"), f"settings: {{files: {{allowed_directories: ['{pages}']}}}}"), site) == []
    )
    assert errors(config(PAGE.format("../pages/down.html"), "settings: {files: {allowed_directories: [../pages]}}"), site) == []
    loaded = load_text(WEB.format(extra="", settings="settings: {files: {allowed_directories: []}}"))
    assert [p.path for p in loaded.problems] == ["settings.files.allowed_directories"]


def test_certificates_uploaded_to_the_state_directory_keep_working_but_nothing_else_comes_from_there(site: Path):
    certs = site.parent / "state" / "certs"
    pki.write_pem(certs / "uploaded.pem", pki.self_signed("uploaded", ["192.0.2.1"]).bundle())
    tls = f"tls: {{certificates: [{certs / 'uploaded.pem'}]}}"
    assert errors(config(tls), site, reserved(site)) == []  # a self-signed warning only
    (certs / "page.html").write_text("<p>down</p>")
    (certs / "page.html").chmod(0o644)
    (p,) = errors(config(PAGE.format(certs / "page.html")), site, reserved(site))
    assert "is in the appliance's state directory" in p and "put the page in one of" in p
    (p,) = errors(config(f"tls: {{certificates: [{site.parent / 'state' / 'management' / 'server.pem'}]}}"), site, reserved(site))
    assert p.startswith("virtual_services[web].tls.certificates[0]: ") and f"put the file in {certs}/ (upload it" in p


def test_named_files_are_regular_files_of_bounded_size(site: Path):
    os.mkfifo(site / "fifo.html")  # read whole, a FIFO (or /dev/zero) would hang the validation
    (p,) = errors(config(PAGE.format("fifo.html")), site)
    assert (
        p
        == f"virtual_services[web].fallback.page: {site / 'fifo.html'} is not a regular file (a device, FIFO or socket): name the maintenance page itself"
    )
    (site / "ca").mkdir()
    (p,) = errors(config("server_tls: {ca_file: ca}\n    health_check: {type: https}"), site)
    assert p == f"virtual_services[web].server_tls.ca_file: {site / 'ca'} is a directory: name the PEM file itself"
    big = site / "big.pem"
    big.write_bytes(pki.self_signed("big", ["192.0.2.1"]).bundle() + b"#" * MAX_PEM_BYTES)
    (p,) = errors(config("tls: {certificates: [big.pem]}"), site)
    assert p.startswith("virtual_services[web].tls.certificates[0]: ") and f"a PEM file may have at most {MAX_PEM_BYTES}" in p


def test_a_maintenance_page_must_already_be_public_on_the_host(site: Path):
    page = site / "page.html"
    page.write_text("<p>down</p>")
    page.chmod(0o600)
    (p,) = errors(config(PAGE.format("page.html")), site)
    assert "is not readable by every local user (mode 0600)" in p and "chmod o+r" in p
    page.chmod(0o644)
    assert errors(config(PAGE.format("page.html")), site) == []


def test_every_path_field_of_the_model_is_checked(site: Path, tmp_path: Path):
    outside = tmp_path / "elsewhere"
    loaded = load_text(f"""
version: 1
settings: {{management: {{certificate: {outside}/m.pem}}}}
virtual_services:
  - name: web
    mode: layer7-http
    listen: [{{address: 10.0.0.10, port: 443}}]
    tls: {{certificates: [{outside}/a.pem, {outside}/b.pem]}}
    server_tls: {{ca_file: {outside}/ca.pem}}
    health_check: {{type: external, script: {outside}/check.sh}}
    fallback: {{maintenance_page: true, page: {outside}/page.html}}
    real_servers: [{{name: rs1, address: 10.0.1.1, port: 80, encrypted: true}}]
ha:
  role: primary
  address: 10.0.0.2
  peer_address: 10.0.0.3
  interface: eth0
  sync: {{peer_certificate: {outside}/peer.pem}}
""")
    assert loaded.config is not None, [str(p) for p in loaded.problems]
    fields = [
        "virtual_services[web].tls.certificates[0]", "virtual_services[web].tls.certificates[1]",
        "virtual_services[web].server_tls.ca_file", "virtual_services[web].fallback.page",
        "virtual_services[web].health_check.script", "settings.management.certificate", "ha.sync.peer_certificate",
    ]  # fmt: skip
    assert sorted(n.field for n in named_files(loaded.config)) == sorted(fields)
    problems = check_files(loaded.config, site)
    assert sorted(p.path for p in problems) == sorted(fields)
    assert all("is not in an allowed directory" in p.message for p in problems)


# --- external check scripts ----------------------------------------------------------------------


def _script(directory: Path, mode: int = 0o755) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "check.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(mode)
    return script


def test_a_script_of_root_in_root_owned_directories_is_trusted_even_below_sticky_tmp(tmp_path: Path):
    # pytest's tmp_path lies below /tmp (root, 1777): the sticky bit keeps others from replacing root's entries
    assert untrusted_script(str(_script(tmp_path / "checks"))) is None


@pytest.mark.parametrize(
    "make, why",
    [
        (lambda d: _script(d, 0o775), "is writable by its group or by others (mode 0775)"),
        (lambda d: _script(d, 0o644), "is not executable"),
        (lambda d: (_script(d), d.chmod(0o777))[0], "is writable by its group or by others (mode 0777)"),
        (lambda d: (_script(d), d.chmod(0o770))[0], "is writable by its group or by others (mode 0770)"),
    ],
    ids=["group-writable script", "not executable", "world-writable directory", "group-writable directory"],
)
def test_scripts_that_others_could_change_are_not_trusted(tmp_path: Path, make, why: str):
    script = make(tmp_path / "checks")
    assert why in (untrusted_script(str(script)) or "")


def test_no_symbolic_link_on_the_way_to_a_script(tmp_path: Path):
    script = _script(tmp_path / "real")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert untrusted_script(str(tmp_path / "link" / "check.sh")) == (
        f"{tmp_path / 'link'} is a symbolic link: name the script by its real path, with no link on the way"
    )
    (tmp_path / "real" / "alias.sh").symlink_to(script)
    assert "alias.sh is a symbolic link" in (untrusted_script(str(tmp_path / "real" / "alias.sh")) or "")
    assert "is not a plain absolute path" in (untrusted_script(f"{tmp_path}/real/../real/check.sh") or "")
    assert untrusted_script(str(tmp_path / "nope.sh")) == f"{tmp_path / 'nope.sh'} does not exist"


def test_an_untrusted_script_is_a_problem_naming_its_field(site: Path):
    script = _script(site / "checks", 0o777)
    (p,) = check_files(config(f"health_check: {{type: external, script: {script}}}"), site)
    assert p.path == "virtual_services[web].health_check.script"
    assert p.message.startswith(f"{script} is writable by its group or by others (mode 0777): external check scripts run as root")
    assert "/etc/pacslb/checks" in p.message


def test_a_script_not_there_yet_passes_validation_only_below_trusted_directories(site: Path, tmp_path: Path):
    later = tmp_path / "checks" / "later.sh"  # root can still put it there: its check is down until then
    parent = "settings: {files: {allowed_directories: [..]}}"
    assert check_files(config(f"health_check: {{type: external, script: {later}}}", parent), site,
                       Reserved(tmp_path / "state")) == []  # fmt: skip
    assert untrusted_script(str(later)) == f"{later.parent} does not exist"  # and at run time it does not run
    (tmp_path / "open").mkdir(mode=0o777)
    (tmp_path / "open").chmod(0o777)
    (p,) = check_files(config(f"health_check: {{type: external, script: {tmp_path / 'open' / 'later.sh'}}}", parent), site)
    assert p.message.startswith(f"{tmp_path / 'open'} is writable by its group or by others (mode 0777)")


def test_settings_files_is_node_local_in_an_ha_pair():
    primary = config("", "settings: {files: {allowed_directories: [/srv/pacs]}}")
    secondary = config("")
    assert "files" not in peer_link.synced_data(primary)["settings"]
    merged = validate_data(peer_link.merge_local(peer_link.synced_data(primary), secondary))
    assert merged.config is not None and merged.config.settings.files == secondary.settings.files
