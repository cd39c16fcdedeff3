"""Milvus for the tests: a real standalone Milvus 2.3.5 and a Milvus Lite server.

`milvus_server`: `milvus-server` from the pip package `milvus==2.3.5`, in a temporary
directory. Every port is a free one picked here: the nine component ports are passed on the
command line, the embedded etcd's two ports (client and peer, which `milvus-server` cannot
set) through an etcd config file named by the ETCD_CONFIG_PATH environment variable, and the
wrapper picks the first free metrics port from 9091 up. Etcd listens on 127.0.0.1 only; the
component gRPC ports listen on all interfaces (Milvus 2.3 has no setting for that), but are
advertised and reached on 127.0.0.1. The session TTL is 10 s instead of 30 s, so that a
server killed and started again is back in about 10 s.

`milvus_lite_server`: `python -m milvus_lite server` on 127.0.0.1 and a free port.

Both run in a process group of their own. stop() kills the group (SIGKILL, as in a crash);
start() runs it again on the same port and data. Both keep what they acknowledged across a
kill: Milvus logs inserts to its local message queue, Lite to its write-ahead log (written,
not fsynced, so a kill loses nothing but a power cut could). `milvus-server` is only a
launcher: it renders `configs/milvus.yaml`, unpacks `bin/milvus` and runs
`bin/milvus run standalone`. Run again it would move to other ports while the old ones
linger in TIME_WAIT, so restarts run `bin/milvus run standalone` directly with the config it
wrote. pause() / resume() freeze and thaw the group (SIGSTOP / SIGCONT). The session end
stops the servers and removes their directories (the standalone one holds 500 MB).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backends import ServerHandle, free_port, unavailable

__all__ = [
    "MilvusLiteServer",
    "MilvusStandaloneServer",
    "ProcessGroupServer",
    "milvus_lite_server",
    "milvus_server",
]

_READY_TIMEOUT_S = 60.0
_GONE_TIMEOUT_S = 10.0
_SESSION_TTL_S = 10
#: `milvus-server` options for the component ports.
_PORT_OPTIONS = (
    "proxy", "proxy-internal", "root-coord", "query-coord", "query-node",
    "index-coord", "index-node", "data-coord", "data-node",
)  # fmt: skip
#: Config sections whose advertised address is set to 127.0.0.1.
_COMPONENTS = (
    "rootCoord", "proxy", "queryCoord", "queryNode", "indexCoord", "indexNode", "dataCoord", "dataNode",
)  # fmt: skip
_STARTED_BANNER = b"Welcome to use Milvus!"


class ProcessGroupServer(ServerHandle):
    """A server process (and its children) in a process group of its own."""

    label = "milvus"

    def __init__(self, directory: Path, port: int):
        self.directory = directory
        self.port = port
        self.url = f"milvus://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = directory / "server.log"

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _environment(self) -> dict[str, str]:
        return dict(os.environ, PYTHONUNBUFFERED="1")

    def _ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        if self.process is not None:
            return
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self._command(),
                cwd=self.directory,
                env=self._environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready()
        except RuntimeError:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while not self._ready():
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.label} exited with {self.process.returncode}: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.label} not ready in {_READY_TIMEOUT_S} s: {self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return self.log_path.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        """Kill the whole group, as a crash would, and wait until every process is gone."""
        if self.process is None:
            return
        group = self.process.pid
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(group, signal.SIGKILL)
        self.process.wait()
        self.process = None
        _wait_group_gone(group)

    def pause(self) -> None:
        """Freeze the server: connections stay open, nothing answers."""
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGCONT)


def _wait_group_gone(group: int) -> None:
    deadline = time.monotonic() + _GONE_TIMEOUT_S
    while _group_members(group):
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes {_group_members(group)} of group {group} did not exit")
        time.sleep(0.05)


def _group_members(group: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


class MilvusStandaloneServer(ProcessGroupServer):
    """`milvus-server` (Milvus 2.3.5 standalone) on free ports, restartable in place."""

    label = "milvus-server"

    def __init__(self, launcher: Path, directory: Path):
        super().__init__(directory, free_port())
        self.launcher = launcher
        self.ports = {option: free_port() for option in _PORT_OPTIONS if option != "proxy"}
        self.ports["proxy"] = self.port
        self.etcd_config = directory / "etcd.yaml"
        self.etcd_config.write_text(_etcd_config(free_port(), free_port()))
        self.metrics_port: int | None = None  # chosen by the launcher the first time

    def start(self) -> None:
        if self.process is None and self._unpacked():
            self.metrics_port = free_port()
        super().start()

    def _command(self) -> list[str]:
        if not self._unpacked():
            return [str(self.launcher), "--data", str(self.directory), *self._options()]
        return [str(self.directory / "bin" / "milvus"), "run", "standalone"]

    def _unpacked(self) -> bool:
        return (self.directory / "configs" / "milvus.yaml").exists()

    def _options(self) -> list[str]:
        options = [arg for option, port in self.ports.items() for arg in (f"--{option}-port", str(port))]
        extra = [f"{component}.ip=127.0.0.1" for component in _COMPONENTS]
        extra.append(f"common.session.ttl={_SESSION_TTL_S}")
        return options + [arg for setting in extra for arg in ("--extra-config", setting)]

    def _environment(self) -> dict[str, str]:
        environment = dict(super()._environment(), ETCD_CONFIG_PATH=str(self.etcd_config))
        if self.metrics_port is not None:  # what the launcher sets for bin/milvus
            bin_dir = str(self.directory / "bin")
            environment.update(
                DEPLOY_MODE="STANDALONE",
                METRICS_PORT=str(self.metrics_port),
                MILVUS_RUN_DIR=str(self.directory / "run"),
                LD_LIBRARY_PATH=":".join(filter(None, [bin_dir, os.environ.get("LD_LIBRARY_PATH")])),
            )
        return environment

    def _ready(self) -> bool:
        if self.metrics_port is None:  # the launcher prints its banner once /healthz says OK
            started = _STARTED_BANNER in self.log_path.read_bytes()
            if started:
                self._use_configured_proxy_port()
            return started
        return _healthy(self.metrics_port)

    def _use_configured_proxy_port(self) -> None:
        """The launcher takes the next free port if one is taken: use the one it wrote."""
        config = (self.directory / "configs" / "milvus.yaml").read_text()
        self.port = _section_port(config, "proxy") or self.port
        self.url = f"milvus://127.0.0.1:{self.port}"


def _etcd_config(client_port: int, peer_port: int) -> str:
    client, peer = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    return (
        f"name: default\nlisten-client-urls: {client}\nadvertise-client-urls: {client}\n"
        f"listen-peer-urls: {peer}\ninitial-advertise-peer-urls: {peer}\n"
        f"initial-cluster: default={peer}\n"
    )


def _section_port(config: str, section: str) -> int | None:
    """`port:` of a top-level section of milvus.yaml."""
    inside = False
    for line in config.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            inside = line.rstrip() == f"{section}:"
        elif inside and line.startswith("  port:"):
            return int(line.split(":", 1)[1].split("#", 1)[0])
    return None


def _healthy(metrics_port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/healthz", timeout=1) as response:
            return b"OK" in response.read()
    except (urllib.error.URLError, OSError):
        return False


class MilvusLiteServer(ProcessGroupServer):
    """`python -m milvus_lite server` on 127.0.0.1."""

    label = "milvus_lite"

    def _command(self) -> list[str]:
        data = self.directory / "data"
        return [
            sys.executable, "-m", "milvus_lite", "server",
            "--host", "127.0.0.1", "--port", str(self.port), "--data-dir", str(data),
        ]  # fmt: skip

    def _ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False


def _launcher() -> Path | None:
    beside = Path(sys.executable).parent / "milvus-server"
    if beside.exists():
        return beside
    found = shutil.which("milvus-server")
    return Path(found) if found else None


def _serve(server: ProcessGroupServer) -> Iterator[ProcessGroupServer]:
    """Start (a second try covers a port taken meanwhile: the launcher's metrics port from 9091
    up is picked without a lock, and the second standalone try picks its own), yield, clean up."""
    try:
        try:
            server.start()
        except (OSError, RuntimeError):
            try:
                server.start()
            except (OSError, RuntimeError) as exc:
                unavailable(f"{server.label}: {exc}")
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)


def _needs_pymilvus() -> None:
    if importlib.util.find_spec("pymilvus") is None:
        unavailable("milvus: needs pymilvus (pip install 'modelcache[milvus]')")


@pytest.fixture(scope="session")
def milvus_server() -> Iterator[ProcessGroupServer]:
    _needs_pymilvus()
    launcher = _launcher()
    if launcher is None:
        unavailable("milvus: needs milvus-server (pip install milvus==2.3.5)")
        return
    directory = Path(tempfile.mkdtemp(prefix="mc-milvus-"))
    yield from _serve(MilvusStandaloneServer(launcher, directory))


@pytest.fixture(scope="session")
def milvus_lite_server() -> Iterator[ProcessGroupServer]:
    _needs_pymilvus()
    if importlib.util.find_spec("milvus_lite") is None:
        unavailable("milvus_lite: needs milvus-lite (pip install milvus-lite)")
    directory = Path(tempfile.mkdtemp(prefix="mc-milvus-lite-"))
    yield from _serve(MilvusLiteServer(directory, free_port()))
