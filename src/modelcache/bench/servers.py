"""Server processes under test: started on a free 127.0.0.1 port, timed, measured, stopped."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

__all__ = [
    "ServerProcess",
    "base_env",
    "free_port",
    "machine_busy_seconds",
    "modelcache_command",
    "process_cpu_seconds",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def modelcache_command() -> list[str]:
    """`modelcache serve` from the running environment (the console script when installed)."""
    script = Path(sys.executable).parent / "modelcache"
    return [str(script), "serve"] if script.exists() else [sys.executable, "-m", "modelcache", "serve"]


def _ready(port: int, path: str) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


class ServerProcess:
    """A server started with `command` and `env`; its output goes to `log`."""

    def __init__(self, command: list[str], env: dict[str, str], port: int, ready_path: str, log: Path):
        self.command = command
        self.env = env
        self.port = port
        self.ready_path = ready_path
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 600) -> float:
        """Start it and wait until `ready_path` answers 200; returns the seconds that took."""
        started = time.perf_counter()
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.command, env=self.env, stdout=log, stderr=log)
        while time.perf_counter() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited during start-up: {self.last_line()} (log: {self.log})")
            if _ready(self.port, self.ready_path):
                return time.perf_counter() - started
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout:.0f} s: {self.last_line()} (log: {self.log})")

    def rss_mb(self) -> float:
        """Resident memory of the server process now (Linux /proc), in MiB; NaN elsewhere."""
        if self.process is None:
            return float("nan")
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return float("nan")
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far (user + system); NaN if unknown."""
        if self.process is None:
            return float("nan")
        return process_cpu_seconds(self.process.pid)

    def stop(self, timeout: float = 120) -> None:
        """SIGTERM, as a process manager would; SIGKILL if it has not exited in time."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def last_line(self) -> str:
        """The last line the server logged that names an error, else its last line."""
        lines = [line.strip() for line in self.tail().splitlines() if line.strip()]
        errors = [line for line in lines if "Error" in line or "error" in line]
        return (errors or lines or ["no output"])[-1]


def base_env(**settings: object) -> dict[str, str]:
    """This process's environment plus MODELCACHE_<NAME> settings."""
    env = dict(os.environ)
    env.update({f"MODELCACHE_{name.upper()}": str(value) for name, value in settings.items()})
    return env


def _clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process from /proc; NaN where there is no /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / _clock_ticks()


def machine_busy_seconds() -> float:
    """CPU time every process on the machine has used since boot (all cores); NaN if unknown."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return float("nan")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in first[1:9])
    return (user + nice + system + irq + softirq + steal) / _clock_ticks()
