"""MariaDB / MySQL for the tests: the server the machine runs, one fresh database per session.

The server is found at `MODELCACHE_TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/`,
a user allowed to create and drop databases). The session gets `mc_test_<random hex>`,
dropped at the end. The server is the machine's service, so stop()/start() are not offered.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest

from tests.backends import ServerHandle, unavailable

__all__ = ["MySQLServer", "admin_connection", "mysql_server"]

DEFAULT_ADMIN_URL = "mysql://root@127.0.0.1:3306/"


class MySQLServer(ServerHandle):
    """A database of its own on the machine's MySQL server."""

    def __init__(self, admin_url: str, database: str):
        self.admin_url = admin_url
        self.database = database
        parts = urlsplit(admin_url)
        self.url = f"mysql://{parts.netloc}/{quote(database)}"

    def connect(self) -> Any:
        """A plain pymysql connection to the test database (for checks and clean-up)."""
        return admin_connection(self.admin_url, self.database)


def admin_connection(admin_url: str, database: str | None = None) -> Any:
    import pymysql

    parts = urlsplit(admin_url)
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=database,
        charset="utf8mb4",
        autocommit=True,
        connect_timeout=3,
    )


@pytest.fixture(scope="session")
def mysql_server() -> Iterator[MySQLServer]:
    admin_url = os.environ.get("MODELCACHE_TEST_MYSQL_URL", DEFAULT_ADMIN_URL)
    try:
        import pymysql
    except ImportError:
        unavailable("pymysql is not installed")
    database = f"mc_test_{secrets.token_hex(6)}"
    try:
        with admin_connection(admin_url) as conn, conn.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    except pymysql.err.MySQLError as exc:
        unavailable(f"MySQL at {urlsplit(admin_url).netloc}: {exc}")
    try:
        yield MySQLServer(admin_url, database)
    finally:
        with admin_connection(admin_url) as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")
