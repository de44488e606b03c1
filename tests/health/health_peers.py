"""Real peers for the PACS-aware health checks: dcmtk's storescp and dcmqrscp, RabbitMQ, MLLP responders.

Each starter picks free loopback ports, keeps its files in a short temporary directory, polls until the
peer answers, and `stop()` ends exactly the processes it started, by PID (process group), also after a
failure. bench/health_checks.py uses the same starters.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import hl7

if str(Path(__file__).resolve().parents[1]) not in sys.path:  # bench/ puts only tests/health on sys.path
    sys.path.append(str(Path(__file__).resolve().parents[1]))
from support.net import LOOPBACK, accepts, free_port
from support.processes import pid_gone, stop_group
from support.wait import wait_until

__all__ = ["DicomSCP", "RabbitMQ", "MLLPResponder", "RABBITMQ_BIN", "LOOPBACK", "accepts", "free_port", "pid_gone",
           "wait_until"]  # fmt: skip

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")


# --- DICOM -------------------------------------------------------------------------------------


@dataclass
class DicomSCP:
    """storescp (Verification and Storage SCP; answers any called AE title) or dcmqrscp (which refuses
    called AE titles missing from its configuration: "Called AE Title Not Recognized")."""

    ae_title: str = "ARCHIVE"
    kind: str = "storescp"
    port: int = 0
    process: subprocess.Popen | None = None
    directory: str = ""

    def start(self, lifetime: float = 600) -> "DicomSCP":
        self.port = self.port or free_port()
        self.directory = tempfile.mkdtemp(prefix="pacslb-dcm-", dir="/tmp")
        # dcmtk keeps Nagle on unless TCP_NODELAY=1: every exchange would wait 40 ms for a delayed ACK.
        env = {**os.environ, "TCP_NODELAY": "1"}
        if self.kind == "storescp":
            command = ["storescp", "-dhl", "--ignore", "-aet", self.ae_title, "-od", self.directory, str(self.port)]
        else:
            db = Path(self.directory) / "db"
            db.mkdir()
            cfg = Path(self.directory) / "dcmqrscp.cfg"
            cfg.write_text(
                f"NetworkTCPPort = {self.port}\nMaxPDUSize = 16384\nMaxAssociations = 16\n"
                "HostTable BEGIN\nHostTable END\nVendorTable BEGIN\nVendorTable END\n"
                f"AETable BEGIN\n{self.ae_title} {db} RW (10, 64mb) ANY\nAETable END\n"
            )
            command = ["dcmqrscp", "-dhl", "-c", str(cfg), str(self.port)]
        self.process = subprocess.Popen(
            ["timeout", "-s", "KILL", str(lifetime), *command],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        wait_until(lambda: self.process.poll() is not None or accepts(self.port), what=f"{self.kind} to listen")
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.kind} exited at start with status {self.process.returncode}")
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process)
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)


# --- RabbitMQ ----------------------------------------------------------------------------------


@dataclass
class RabbitMQ:
    """A RabbitMQ node of its own: own epmd, node name, ports and directories; loopback only."""

    port: int = 0
    directory: str = ""
    env: dict = field(default_factory=dict)
    epmd: subprocess.Popen | None = None
    server: subprocess.Popen | None = None

    def start(self, lifetime: float = 1800, ready_within: float = 120) -> "RabbitMQ":
        self.directory = tempfile.mkdtemp(prefix="pacslb-rmq-", dir="/tmp")
        d = Path(self.directory)
        (d / "enabled_plugins").write_text("[].\n")  # no management plugin: it would want port 15672
        self.port = free_port()
        epmd_port, dist_port = free_port(), free_port()
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(d),  # the Erlang cookie goes here, shared by the server and rabbitmqctl
            "RABBITMQ_NODENAME": f"pacslb{uuid.uuid4().hex[:10]}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": LOOPBACK,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(dist_port),
            "ERL_EPMD_PORT": str(epmd_port),
            "ERL_EPMD_ADDRESS": LOOPBACK,
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(d / "plugins-expand"),
            "RABBITMQ_PID_FILE": str(d / "rabbit.pid"),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }
        try:
            # Our own epmd in the foreground, so that we hold its PID (the server would start a daemon).
            self.epmd = subprocess.Popen(
                ["timeout", "-s", "KILL", str(lifetime), "epmd", "-port", str(epmd_port), "-address", LOOPBACK],
                env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            wait_until(lambda: accepts(epmd_port), what="epmd to listen")
            with open(d / "server.log", "wb") as log:
                self.server = subprocess.Popen(
                    ["timeout", "-s", "KILL", str(lifetime), str(RABBITMQ_BIN / "rabbitmq-server")],
                    env=self.env, cwd=d, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
            wait_until(
                lambda: self.server.poll() is not None or self._greets(),
                timeout=ready_within, interval=0.25, what="RabbitMQ to send Connection.Start",
            )  # fmt: skip
            if self.server.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited with status {self.server.returncode}: {self.log_tail()}")
        except BaseException:
            self.stop()
            raise
        return self

    def _greets(self) -> bool:
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=1) as s:
                s.sendall(b"AMQP\x00\x00\x09\x01")
                return s.recv(1) == b"\x01"
        except OSError:
            return False

    def log_tail(self) -> str:
        try:
            return (Path(self.directory) / "server.log").read_text()[-1500:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.server is not None and self.server.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                subprocess.run(
                    [str(RABBITMQ_BIN / "rabbitmqctl"), "stop"], env=self.env, cwd=self.directory,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
                )  # fmt: skip
        for process in (self.server, self.epmd):
            if process is not None:
                stop_group(process)
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)


# --- HL7 over MLLP -----------------------------------------------------------------------------


class MLLPResponder:
    """An asyncio MLLP listener that acknowledges every message with `code` (AA, AE, AR...),
    or never answers (`code="hang"`), or sends `raw` bytes instead of an acknowledgement."""

    def __init__(self, code: str = "AA", text: str = "", raw: bytes | None = None) -> None:
        self.code, self.text, self.raw = code, text, raw
        self.server: asyncio.base_events.Server | None = None
        self.port = 0
        self.received: list[str] = []

    async def start(self) -> "MLLPResponder":
        self.server = await asyncio.start_server(self._serve, LOOPBACK, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = b""
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                buffer += chunk
                while b"\x1c\x0d" in buffer:
                    start = buffer.index(b"\x0b")
                    end = buffer.index(b"\x1c\x0d")
                    message, buffer = buffer[start + 1 : end].decode(), buffer[end + 2 :]
                    self.received.append(message)
                    if self.code == "hang":
                        continue
                    if self.raw is not None:
                        writer.write(self.raw)
                    else:
                        ack = str(hl7.parse(message).create_ack(self.code, application="ENGINE", facility="HOSP"))
                        if self.text:  # MSA is the last segment: this is its MSA-3 (text message)
                            ack = ack.rstrip("\r") + f"|{self.text}\r"
                        writer.write(b"\x0b" + ack.encode() + b"\x1c\x0d")
                    await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 5)
