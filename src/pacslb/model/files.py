"""Files a configuration names: where they may come from and what they must be (docs/security.md).

HAProxy and the health-check service run as root, so every path in a configuration makes root read a file
(a maintenance page is even served to every client of a VIP) or run one (an external check). The rules:

- every named file lies in one of `settings.files.allowed_directories`, symbolic links resolved first, so
  that a link cannot lead out of them;
- none lies in the appliance's state directory (its private keys and stores), but for certificates in its
  `certs/` folder, where the management API keeps the certificates uploaded to it (`Reserved`): only the
  appliance knows its state directory, so the change front door and `pacslb up` pass it in;
- every named file is a regular file (not a device, FIFO or directory) of bounded size: pages and PEM files
  are read whole, by HAProxy and by the checks of model/checks.py;
- an external check script is trusted only as root's own: the script and every directory above it owned by
  root, not writable by group or others (a root-owned directory with the sticky bit, such as /tmp, counts as
  safe: nobody else can rename or replace the root-owned entries in it), and no symbolic link on the way.
  `untrusted_script` says why one is not; the health-check service asks again before each run.

`check_files` in model/checks.py calls these. `read_named_file` is the one reader of a named file's content
(model/checks.py, the WebUI's and the API's certificate pages, the management server, the HA peer link):
regular files only, opened without following links or blocking, read up to a stated bound (docs/limits.md).
"""

from __future__ import annotations

import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal

from .config import Config
from .limits import MAX_CONFIG_BYTES
from .problems import Problem

Kind = Literal["page", "certificate", "script"]

MAX_PEM_BYTES = 1024 * 1024  # a certificate with its key and chain is a few KiB; a CA bundle about 200 KiB
RECOMMENDED_SCRIPT_DIR = "/etc/pacslb/checks"


@dataclass(frozen=True)
class NamedFile:
    """One file path of a configuration: the field that names it, the value as written, what it is."""

    field: str
    value: str
    kind: Kind

    @property
    def what(self) -> str:
        return {"page": "page", "certificate": "file", "script": "script"}[self.kind]


@dataclass(frozen=True)
class Reserved:
    """The appliance's state directory: no configured file may come from it, but certificates from `certificates`."""

    directory: Path
    certificates: Path | None = None  # StatePaths.certs_dir: certificates uploaded through the management API


def named_files(config: Config) -> Iterator[NamedFile]:
    """Every file path the configuration names, with the path of its field."""
    for vs in config.virtual_services:
        p = f"virtual_services[{vs.name}]"
        if vs.tls:
            for i, cert in enumerate(vs.tls.certificates):
                yield NamedFile(f"{p}.tls.certificates[{i}]", cert, "certificate")
        if vs.server_tls.ca_file:
            yield NamedFile(f"{p}.server_tls.ca_file", vs.server_tls.ca_file, "certificate")
        if vs.fallback is not None and vs.fallback.page is not None:
            yield NamedFile(f"{p}.fallback.page", vs.fallback.page, "page")
        if vs.health_check.type == "external":
            yield NamedFile(f"{p}.health_check.script", vs.health_check.script, "script")  # type: ignore[union-attr]
    if config.settings.management.certificate:
        yield NamedFile("settings.management.certificate", config.settings.management.certificate, "certificate")
    if config.ha is not None and config.ha.sync.peer_certificate:
        yield NamedFile("ha.sync.peer_certificate", config.ha.sync.peer_certificate, "certificate")
    tls = config.cluster.etcd.tls if config.cluster is not None else None
    if tls is not None:  # etcd over TLS (model/cluster_tls.py reads them)
        for name, value in zip(("ca", "cert", "key"), tls.files, strict=True):
            yield NamedFile(f"cluster.etcd.tls.{name}", value, "certificate")


def resolve(path: str, base_dir: Path) -> Path:
    """A configured file path: absolute as written, relative to the configuration file's folder otherwise."""
    candidate = Path(path)
    return candidate if candidate.is_absolute() else (base_dir / candidate)


def real(path: Path) -> Path:
    """The path with every symbolic link resolved (the file need not exist)."""
    return Path(os.path.realpath(path))


def allowed_directories(config: Config, base_dir: Path) -> list[Path]:
    """settings.files.allowed_directories as real paths (relative entries from the configuration file's folder)."""
    return [real(resolve(d, base_dir)) for d in config.settings.files.allowed_directories]


def _within(path: Path, directory: Path) -> bool:
    return path == directory or path.is_relative_to(directory)


def location_problems(config: Config, base_dir: Path, reserved: Reserved | None = None) -> list[Problem]:
    """Named files outside the allowed directories, or inside the appliance's state directory."""
    allowed = allowed_directories(config, base_dir)
    listed = ", ".join(
        d if Path(d).is_absolute() else f"{d} ({real(resolve(d, base_dir))})" for d in config.settings.files.allowed_directories
    )
    state = real(reserved.directory) if reserved is not None else None
    certs = real(reserved.certificates) if reserved is not None and reserved.certificates is not None else None
    problems: list[Problem] = []
    for named in named_files(config):
        written = resolve(named.value, base_dir)
        found = real(written)
        shown = str(written) if found == written else f"{written} (which resolves to {found})"
        if state is not None:
            uploaded = certs is not None and named.kind == "certificate" and _within(found, certs)
            if uploaded:
                continue  # the management API's own certificates: they must keep working
            if _within(found, state):
                where = f"{certs}/ (upload it through the management API) or " if named.kind == "certificate" else ""
                problems.append(Problem(named.field, (
                    f"{shown} is in the appliance's state directory {state}, which holds its private keys and "
                    f"stores: a configuration names nothing there; put the {named.what} in {where}one of "
                    f"settings.files.allowed_directories ({listed})"
                )))  # fmt: skip
                continue
        if not any(_within(found, d) for d in allowed):
            problems.append(Problem(named.field, (
                f"{shown} is not in an allowed directory (settings.files.allowed_directories: {listed}); put the "
                f"{named.what} in one of them, or add its directory to that list in the configuration file on the "
                "appliance's host"
            )))  # fmt: skip
    return problems


@dataclass(frozen=True)
class Content:
    """A named file as it was read: its bytes and its mode bits (a page must be readable by everyone)."""

    data: bytes
    mode: int


_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def _kind(mode: int) -> str:
    return "a directory" if stat.S_ISDIR(mode) else "not a regular file (a device, FIFO or socket)"


def read_named_file(field: str, file: Path, limit: int, what: str) -> Content | Problem:
    """The content of a file a configuration names, or the Problem (naming `field`) why it is not read.

    The one reader of such files (certificates, CA files, pages, the management certificate, the peer
    link's pinned certificate): symbolic links are resolved once (where they lead was checked against the
    allowed directories), then the real path is examined with lstat and opened only when it is a regular
    file, with O_NOFOLLOW (a link put there since is not followed) and O_NONBLOCK (a FIFO put there since
    does not block), checked again with fstat on what was opened, and read up to `limit` bytes: a device,
    FIFO, directory or huge file is refused without reading a byte more than the bound.
    """
    found = Path(os.path.realpath(file))
    try:
        st = os.lstat(found)
    except FileNotFoundError:
        return Problem(field, f"file {file} does not exist: create it, or correct the path")
    except OSError as exc:
        return Problem(field, f"cannot read {file}: {exc.strerror}")
    if not stat.S_ISREG(st.st_mode):
        return Problem(field, f"{file} is {_kind(st.st_mode)}: name the {what} itself")
    if st.st_size > limit:
        return Problem(field, f"{file} has {st.st_size} bytes; a {what} may have at most {limit}: make it smaller")
    try:
        fd = os.open(found, _OPEN_FLAGS)
    except OSError as exc:
        return Problem(field, f"cannot read {file}: {exc.strerror}")
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
            return Problem(field, f"{file} was replaced while it was read ({_kind(opened.st_mode)} now): name the {what} itself")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:  # one byte past the bound tells a file that grew since lstat
            chunk = os.read(fd, min(64 * 1024, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        return Problem(field, f"cannot read {file}: {exc.strerror}")
    finally:
        os.close(fd)
    if size > limit:
        return Problem(field, f"{file} has more than {limit} bytes; a {what} may have at most {limit}: make it smaller")
    return Content(b"".join(chunks), stat.S_IMODE(opened.st_mode))


def regular_file_problem(field: str, file: Path, limit: int, what: str) -> Problem | None:
    """A Problem unless `file` is a regular file of at most `limit` bytes that can be read (`read_named_file`)."""
    found = read_named_file(field, file, limit, what)
    return found if isinstance(found, Problem) else None


def _owner(uid: int) -> str:
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def untrusted_script(script: str, missing_ok: bool = False) -> str | None:
    """Why root must not run `script`, or None: the script and every directory above it owned by root and not
    writable by group or others (a root-owned sticky directory such as /tmp excepted), no symbolic link on the
    way (each component is examined with lstat), and the script a regular, executable file.

    `missing_ok` (validation): a script that does not exist yet is no reason, once the part of its path that
    exists passes; only root can create it there, and it is examined again before each run."""
    if not script.startswith("/") or os.path.normpath(script) != script or script.startswith("//"):
        return f"{script!r} is not a plain absolute path: write it without '.', '..', '//' or a trailing '/'"
    parts = script.split("/")[1:]
    current = ""
    for index, part in enumerate(["", *parts]):
        current = "/" if index == 0 else current.rstrip("/") + "/" + part
        last = index == len(parts)
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            return None if missing_ok else f"{current} does not exist"
        except OSError as exc:
            return f"{current} cannot be examined: {exc.strerror}"
        if stat.S_ISLNK(st.st_mode):
            return f"{current} is a symbolic link: name the script by its real path, with no link on the way"
        if st.st_uid != 0:
            return f"{current} is owned by {_owner(st.st_uid)}, not root"
        writable = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        if not last:
            if not stat.S_ISDIR(st.st_mode):
                return f"{current} is not a directory"
            if writable and not st.st_mode & stat.S_ISVTX:
                return f"{current} is writable by its group or by others (mode {stat.S_IMODE(st.st_mode):04o})"
            continue
        if not stat.S_ISREG(st.st_mode):
            return f"{current} is not a regular file"
        if writable:
            return f"{current} is writable by its group or by others (mode {stat.S_IMODE(st.st_mode):04o})"
        if not st.st_mode & stat.S_IXUSR:
            return f"{current} is not executable (chmod 0755 it)"
    return None


def script_problem(field: str, script: str) -> Problem | None:
    """The Problem of an external check script root must not run, or None."""
    why = untrusted_script(script, missing_ok=True)
    if why is None:
        return None
    return Problem(field, (
        f"{why}: external check scripts run as root, so pacslb runs only a script that root owns, in directories "
        f"that only root can change (e.g. {RECOMMENDED_SCRIPT_DIR}, mode 0755, script mode 0755), named without "
        "symbolic links"
    ))  # fmt: skip


def read_config_text(path: Path) -> str | Problem:
    """A configuration file's text, read as every named file is (a regular file, no device or FIFO, at most
    MAX_CONFIG_BYTES), or the Problem why not."""
    found = read_named_file("", path, MAX_CONFIG_BYTES, "configuration file")
    if isinstance(found, Problem):
        return found
    try:
        return found.data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Problem("", f"{path} is not UTF-8 text (byte {exc.start}): save it as UTF-8")
