"""Start the real server process, as `make run` does, and stop it afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.backends import free_port

MODELCACHE = str(Path(sys.executable).parent / "modelcache")


class ServerProcess:
    """`modelcache serve` on 127.0.0.1 and a free port, configured by environment."""

    def __init__(self, data_dir: Path, **settings: object):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.env = {**os.environ, "MODELCACHE_DATA_DIR": str(data_dir), "MODELCACHE_PORT": str(self.port)}
        self.env.update({f"MODELCACHE_{k.upper()}": str(v) for k, v in settings.items()})
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir / f"server-{self.port}.log"
        self.log_offset = 0

    def start(self, timeout: float = 60) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([MODELCACHE, "serve"], env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if requests.get(f"{self.url}/welcome", timeout=1).ok:
                    return self
            except requests.ConnectionError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> bool:
        """SIGTERM, as a process manager would; True if it shut down cleanly in time.

        uvicorn finishes its shutdown and then re-raises SIGTERM, so a clean stop exits
        with -SIGTERM (or 0), after the log's "Application shutdown complete".
        """
        if self.process is None:
            return False
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            code = None
        self.process = None
        clean = code in (0, -signal.SIGTERM)
        return clean and "Application shutdown complete" in self.log_text()

    def log_text(self) -> str:
        """What the server logged since its last start."""
        return self.log.read_bytes()[self.log_offset :].decode(errors="replace")

    def post(self, data: object, *, as_string: bool = True) -> requests.Response:
        """Send like the original clients (a JSON string holding the object) or as plain JSON."""
        import json

        body = json.dumps(data) if as_string else data
        return requests.post(f"{self.url}/modelcache", json=body, timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("server"), max_body_bytes=65536).start()
    yield process
    process.stop()
