"""The Debian package (make deb, packaging/deb/): it builds, lintian finds no error, systemd accepts its unit,
and on this machine it installs a working `pacslb`, upgrades without dropping a connection through the
HAProxy that runs, and is removed leaving the state directory.

Installing touches the machine (dpkg, /usr/lib/pacslb, /etc/pacslb, /var/lib/pacslb): the test refuses to
run where pacslb is installed or those directories exist, and its teardown purges the package and removes
them (and stops by PID every process it started), so that the machine is left as it was found.
"""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from support.net import free_port
from support.processes import haproxy_masters, kill_pids, pid_gone, processes_of
from support.realservers import TinyHTTPServer
from support.wait import wait_until

pytestmark = [pytest.mark.root, pytest.mark.engine, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "packaging" / "deb" / "build.sh"
ETC, STATE, LIB = Path("/etc/pacslb"), Path("/var/lib/pacslb"), Path("/usr/lib/pacslb")
BIN = "/usr/bin/pacslb"
UNIT = Path("/lib/systemd/system/pacslb.service")
ENABLED = Path("/etc/systemd/system/multi-user.target.wants/pacslb.service")
LINTIAN_TIMEOUT = 600
DPKG_TIMEOUT = 300


def run(*args: str, timeout: float = DPKG_TIMEOUT, check: bool = True, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, **kw)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def installed_version() -> str | None:
    done = run("dpkg-query", "-W", "-f=${Status} ${Version}", "pacslb", check=False)
    return done.stdout.split()[-1] if done.returncode == 0 and "install ok installed" in done.stdout else None


def package_present() -> bool:
    """Any trace of pacslb in dpkg's database (installed, or removed with its conffiles kept)."""
    done = run("dpkg-query", "-W", "-f=${Status}", "pacslb", check=False)
    return done.returncode == 0 and "not-installed" not in done.stdout


@pytest.fixture(scope="module")
def machine():
    """A machine without pacslb installed; purged and cleaned up afterwards, also after a failure."""
    if os.geteuid() != 0:
        pytest.skip("installing a Debian package needs root")
    if Path("/run/systemd/system").exists():
        pytest.skip("deliberate: with systemd as PID 1 the package starts its own service; this test drives the controller")
    found = [str(p) for p in (ETC, STATE, LIB) if p.exists()] + (["the pacslb package"] if package_present() else [])
    if found:
        pytest.fail(f"this machine already has {', '.join(found)}: the package test would change them; remove them first")
    work = Path(tempfile.mkdtemp(prefix="pacslb-deb-"))
    try:
        yield work
    finally:
        # whatever still runs on the packaged state directory, by PID (the controller, HAProxy master and workers)
        kill_pids([*processes_of(STATE), *haproxy_masters(STATE)])
        run("dpkg", "--purge", "pacslb", check=False)
        for path in (ETC, STATE, LIB):
            shutil.rmtree(path, ignore_errors=True)
        ENABLED.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def package(machine: Path) -> Path:
    """make deb's build (packaging/deb/build.sh), into the test's own directory."""
    out = machine / "out"
    # gzip's fastest level: the same files, and a minute less on a busy CI machine (lintian refuses no compression)
    done = run(str(BUILD), "1", timeout=900, env={**os.environ, "DEB_OUT": str(out), "DEB_COMPRESSION_LEVEL": "1"})
    debs = sorted(out.glob("pacslb_*-1_*.deb"))
    assert len(debs) == 1, f"build.sh made {debs}:\n{done.stdout}\n{done.stderr}"
    return debs[0]


@pytest.fixture(scope="module")
def lintian(package: Path):
    """lintian on the package, in the background while the install test runs (it takes a minute or two here)."""
    process = subprocess.Popen(["lintian", "--fail-on", "error", "--tag-display-limit", "0", str(package)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def higher_version(package: Path, work: Path) -> Path:
    """The same package with a higher version (0.1.0-1 -> 0.1.0-2): what an upgrade installs."""
    tree = work / "upgrade"
    run("dpkg-deb", "-R", str(package), str(tree))
    control = tree / "DEBIAN" / "control"
    text = control.read_text()
    version = next(line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("Version: "))
    upgraded = version.rsplit("-", 1)[0] + "-2"
    control.write_text(text.replace(f"Version: {version}\n", f"Version: {upgraded}\n"))
    target = work / package.name.replace(f"_{version}_", f"_{upgraded}_")
    run("dpkg-deb", "--root-owner-group", "-Znone", "--build", str(tree), str(target))
    shutil.rmtree(tree)
    return target


def service_config(port: int, server: TinyHTTPServer, agent_port: int) -> str:
    """The hospital's own configuration: one TCP virtual service (a connection stays open as long as both ends want:
    a DICOM association, here HTTP kept alive), the management API off (no fixed port here)."""
    return (
        "version: 1\n"
        f"settings: {{max_connections: 2000, health: {{agent_port: {agent_port}}}, management: {{enabled: false}}}}\n"
        "virtual_services:\n"
        "  - name: web\n    mode: layer7-tcp\n"
        f"    listen: [{{address: 127.0.0.1, port: {port}}}]\n"
        "    health_check: {type: connect, interval: 300ms, timeout: 300ms, rise: 1, fall: 2}\n"
        f"    real_servers: [{{name: rs1, address: {server.host}, port: {server.port}}}]\n"
    )


def get(conn: http.client.HTTPConnection) -> str:
    """One request on a kept-alive connection (an exception if the connection was dropped)."""
    conn.request("GET", "/")
    response = conn.getresponse()
    body = response.read().decode()
    assert response.status == 200, (response.status, body)
    return body


def up(log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([BIN, "up", "-c", str(ETC / "pacslb.yaml"), "--state-dir", str(STATE)],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


def serving(process: subprocess.Popen, port: int, log: Path) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"pacslb up exited {process.returncode}:\n{log.read_text(errors='replace')}")
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        return get(conn) == "rs1\n"
    except (OSError, AssertionError, http.client.HTTPException):
        return False


def test_install_upgrade_remove(machine: Path, package: Path, lintian: subprocess.Popen) -> None:
    # installing: pacslb on the PATH, the default configuration valid, the directories root's alone
    run("dpkg", "-i", str(package))
    assert installed_version() == "0.1.0-1"
    assert shutil.which("pacslb") == BIN
    assert run("pacslb", "--version").stdout.strip() == "pacslb 0.1.0"
    assert "valid" in run("pacslb", "validate", "-c", str(ETC / "pacslb.yaml"), "--state-dir", str(STATE)).stdout
    for path, mode in ((ETC, 0o750), (STATE, 0o750), (ETC / "pacslb.yaml", 0o640)):
        st = path.stat()
        assert (st.st_uid, st.st_mode & 0o7777) == (0, mode), f"{path}: owner {st.st_uid}, mode {oct(st.st_mode & 0o7777)}"

    # systemd accepts the unit as installed (its ExecStart exists now)
    verified = run("systemd-analyze", "verify", str(UNIT), check=False)
    assert verified.returncode == 0 and "pacslb.service" not in verified.stdout + verified.stderr, verified

    # the hospital's configuration, run by the packaged binary on the packaged state directory
    server = TinyHTTPServer("rs1", "127.0.0.1").start()
    port, log = free_port(), machine / "pacslb-up.log"
    (ETC / "pacslb.yaml").write_text(service_config(port, server, free_port()))
    first = up(log)
    try:
        wait_until(lambda: serving(first, port, log), timeout=60, what="the packaged appliance to serve")
        [master] = haproxy_masters(STATE)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        assert get(conn) == "rs1\n"

        # upgrading: the controller hands over, HAProxy keeps serving the open connection
        upgraded = higher_version(package, machine)
        done = run("dpkg", "-i", str(upgraded))
        assert installed_version() == "0.1.0-2"
        assert first.wait(timeout=60) == 0, log.read_text(errors="replace")
        assert "start the controller again" in done.stderr, done.stderr
        assert haproxy_masters(STATE) == [master]
        assert get(conn) == "rs1\n"
        assert "agent_port" in (ETC / "pacslb.yaml").read_text(), "the upgrade replaced the configuration"
        assert (STATE / "revisions.sqlite").exists()

        # the new controller adopts that HAProxy: same master, the same connection still served
        second = up(log)
        wait_until(lambda: "adopted" in log.read_text(errors="replace").split("pacslb controller")[-1] and
                   serving(second, port, log), timeout=60, what="the upgraded controller to adopt HAProxy")  # fmt: skip
        assert haproxy_masters(STATE) == [master]
        assert get(conn) == "rs1\n"
        conn.close()

        # removing: the appliance stops, the configuration and the state directory stay
        run("dpkg", "-r", "pacslb")
        assert second.wait(timeout=60) == 0
        wait_until(lambda: pid_gone(master), timeout=30, what="HAProxy to stop")
        assert shutil.which("pacslb") is None and not LIB.exists()
        assert (STATE / "revisions.sqlite").exists() and (ETC / "pacslb.yaml").exists()
    finally:
        server.stop()

    # lintian (run meanwhile): no error
    output, _ = lintian.communicate(timeout=LINTIAN_TIMEOUT)
    assert lintian.returncode == 0 and "\nE: " not in f"\n{output}", output

    # purging takes the rest, as Debian's policy asks
    run("dpkg", "--purge", "pacslb")
    assert not ETC.exists() and not STATE.exists() and not ENABLED.exists()
