"""Hostile files named by a configuration (issue 13): devices, FIFOs, directories, huge files and links to
them are refused by the one reader (model/files.py `read_named_file`) with a Problem naming the field,
without reading past the bound, and `pacslb validate` exits 2 quickly and in bounded memory."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pacslb import pki
from pacslb.model import load_text
from pacslb.model.checks import check_files
from pacslb.model.files import MAX_PEM_BYTES, Content, Problem, read_named_file

CERT_FIELD = "virtual_services[web].tls.certificates[0]"
CONFIG = """
version: 1
settings: {{files: {{allowed_directories: [., /dev]}}}}
virtual_services:
  - name: web
    mode: layer7-http
    listen: [{{address: 192.0.2.1, port: 443}}]
    tls: {{certificates: ['{cert}']}}
    real_servers: [{{name: rs1, address: 192.0.2.11, port: 80}}]
"""
MiB = 1024 * 1024


def _hostile(site: Path, kind: str) -> str:
    """A file of `kind` in `site`, returned as the path a configuration names."""
    if kind == "/dev/zero":
        return "/dev/zero"
    target = site / f"{kind}.pem"
    if kind == "fifo":
        os.mkfifo(target)  # a reader that opened it without O_NONBLOCK would wait for a writer forever
    elif kind == "2MiB":
        target.write_bytes(pki.self_signed("big", ["192.0.2.1"]).bundle() + b"#" * 2 * MiB)
    elif kind == "directory":
        target.mkdir()
    elif kind == "link-to-dev-zero":
        target.symlink_to("/dev/zero")
    return str(target)


SAYS = {
    "/dev/zero": "/dev/zero is not a regular file (a device, FIFO or socket): name the PEM file itself",
    "fifo": "is not a regular file (a device, FIFO or socket): name the PEM file itself",
    "2MiB": f"a PEM file may have at most {MAX_PEM_BYTES}: make it smaller",
    "directory": "is a directory: name the PEM file itself",
    "link-to-dev-zero": "is not a regular file (a device, FIFO or socket): name the PEM file itself",
}


@pytest.mark.parametrize("kind", list(SAYS))
def test_a_hostile_certificate_is_refused_naming_its_field(tmp_path: Path, kind: str):
    cert = _hostile(tmp_path, kind)
    loaded = load_text(CONFIG.format(cert=cert))
    assert loaded.config is not None, [str(p) for p in loaded.problems]
    started = time.monotonic()
    problems = [p for p in check_files(loaded.config, tmp_path) if p.severity == "error"]
    assert time.monotonic() - started < 2.0, "refused at once, nothing read"
    assert [p.path for p in problems] == [CERT_FIELD]
    assert SAYS[kind] in problems[0].message, problems[0].message


def test_with_the_default_directories_a_device_is_refused_for_where_it_lies(tmp_path: Path):
    link = tmp_path / "cert.pem"
    link.symlink_to("/dev/zero")
    loaded = load_text(CONFIG.format(cert=link).replace("[., /dev]", "[.]"))
    assert loaded.config is not None
    (p,) = check_files(loaded.config, tmp_path)
    assert p.path == CERT_FIELD and "(which resolves to /dev/zero) is not in an allowed directory" in p.message


def test_the_reader_reads_at_most_its_bound_even_from_a_file_that_grows(tmp_path: Path):
    small = tmp_path / "small.pem"
    small.write_bytes(b"x" * 100)
    found = read_named_file("f", small, 100, "PEM file")
    assert isinstance(found, Content) and found.data == b"x" * 100
    assert found.mode == 0o644 & ~_umask()
    # at the bound passes, one byte over is refused (the lstat sees the size)
    over = read_named_file("f", small, 99, "PEM file")
    assert isinstance(over, Problem) and over.path == "f" and "has 100 bytes; a PEM file may have at most 99" in over.message
    missing = read_named_file("f", tmp_path / "none.pem", 99, "PEM file")
    assert isinstance(missing, Problem) and "does not exist" in missing.message


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _limit_memory() -> None:  # in the child: 1 GiB of address space; the OOM of issue 13 grew to 24 GB
    resource.setrlimit(resource.RLIMIT_AS, (1024 * MiB, 1024 * MiB))


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo", "2MiB", "link-to-dev-zero"])
def test_pacslb_validate_exits_2_naming_the_field_quickly_in_bounded_memory(tmp_path: Path, kind: str):
    config = tmp_path / "pacslb.yaml"
    config.write_text(CONFIG.format(cert=_hostile(tmp_path, kind)))
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pacslb", "validate", "-c", str(config), "--state-dir", str(tmp_path / "state")],
        capture_output=True, text=True, timeout=120, preexec_fn=_limit_memory,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    assert f"{CERT_FIELD}: " in done.stderr and SAYS[kind] in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert elapsed < 60, f"validate took {elapsed:.1f}s"


def test_a_configuration_file_that_is_a_device_or_too_large_is_refused(tmp_path: Path):
    big = tmp_path / "big.yaml"
    with big.open("wb") as f:
        f.truncate(64 * MiB)  # sparse: no disk used
    for path, says in ((Path("/dev/zero"), "is not a regular file"), (big, "may have at most")):
        done = subprocess.run([sys.executable, "-m", "pacslb", "validate", "-c", str(path)], capture_output=True, text=True,
                              timeout=120, preexec_fn=_limit_memory)  # fmt: skip
        assert done.returncode == 2 and says in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_the_other_readers_of_named_files_go_through_the_bounded_reader(tmp_path: Path):
    from pacslb.ha.peer_link import PeerLinkError, check_pin, client_context
    from pacslb.web.certs import certificate_info

    fifo = tmp_path / "peer.pem"
    os.mkfifo(fifo)
    started = time.monotonic()
    info = certificate_info(Path("/dev/zero"))  # the WebUI's certificates page
    assert info.error and "is not a regular file" in info.error
    assert "is not a regular file" in (certificate_info(fifo).error or "")
    with pytest.raises(PeerLinkError, match=r"^ha.sync.peer_certificate: .* is not a regular file"):
        check_pin(fifo, None)  # the HA peer link, at its start
    with pytest.raises(PeerLinkError, match="is not a regular file"):
        client_context(tmp_path / "state", fifo)  # and each time it connects
    assert time.monotonic() - started < 2.0
