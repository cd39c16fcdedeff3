"""MySQL / MariaDB row store, also serving OceanBase through its MySQL protocol.

Same semantics as the SQLite store, over a small pool of pymysql connections. The schema
is the shipped file `schema/mysql.sql`, run on start-up (DBAs may run it by hand). Every
statement is parameterised; table names are constants. Connection failures (refused,
lost, timed out) become `BackendUnavailable`; broken connections are dropped and new
ones opened on the next call, so the store recovers when the server comes back.

URL: `mysql://user:password@host:port/database?pool_size=10&connect_timeout=3`
(also `mysql+pymysql://` and `oceanbase://`; user and password are URL-decoded, so an
OceanBase user `root@tenant` is written `root%40tenant`). Further query options:
`read_timeout`, `write_timeout` (seconds).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from types import ModuleType
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from modelcache.errors import BackendUnavailable, ConfigurationError, MissingDependency, ModelCacheError
from modelcache.registry import url_scheme
from modelcache.settings import Settings
from modelcache.storage.base import Entry, NewEntry
from modelcache.storage.mysql_pool import Connection, ConnectionPool
from modelcache.storage.sql import (
    IN_LIST_CHUNK,
    SqlRowStoreBase,
    chunked,
    insert_entry_sql,
    insert_params,
)
from modelcache.storage.urls import (
    OptionReader,
    credentials,
    port_or,
    positive_integer,
    positive_number,
    query_options,
)

__all__ = ["MySQLConfig", "MySQLRowStore", "parse_mysql_url", "schema_statements"]

T = TypeVar("T")

_BACKEND = "mysql"
_URL_SCHEMES = frozenset({"mysql", "oceanbase"})
_DEFAULT_PORT = 3306

_INSERT_ENTRY = insert_entry_sql("%s")
_URL_OPTIONS: dict[str, OptionReader] = {
    "pool_size": positive_integer,
    "connect_timeout": positive_number,
    "read_timeout": positive_number,
    "write_timeout": positive_number,
}


@dataclass(frozen=True)
class MySQLConfig:
    """Where the server is and how patient to be with it (timeouts in seconds)."""

    host: str
    database: str
    user: str
    password: str = field(default="", repr=False)
    port: int = _DEFAULT_PORT
    pool_size: int = 10
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    write_timeout: float = 10.0
    #: A pooled connection idle at least this long is pinged before it is handed out.
    ping_after_idle_s: float = 1.0


def parse_mysql_url(url: str) -> MySQLConfig:
    """`mysql://user:password@host:port/database?pool_size=N&connect_timeout=S` -> config."""
    if url_scheme(url) not in _URL_SCHEMES:
        raise ConfigurationError(f"not a mysql:// or oceanbase:// URL: {url_scheme(url)!r}")
    parts = urlsplit(url)
    database = unquote(parts.path.lstrip("/"))
    if not parts.hostname or not parts.username or not database or "/" in database:
        raise ConfigurationError("mysql URL must look like mysql://user:password@host:port/database")
    user, password = credentials(parts)
    return MySQLConfig(
        host=parts.hostname,
        database=database,
        user=user,
        password=password,
        port=port_or(parts, _DEFAULT_PORT, "mysql"),
        **query_options(parts.query, "mysql", _URL_OPTIONS),
    )


def schema_statements(script: str) -> list[str]:
    """Split a schema file into statements: '--' comment lines dropped, ';' ends a line."""
    statements: list[str] = []
    current: list[str] = []
    for line in script.splitlines():
        if line.lstrip().startswith("--"):
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            statements.append("\n".join(current).strip().rstrip(";").strip())
            current = []
    statements.append("\n".join(current).strip())
    return [statement for statement in statements if statement]


def _read_schema() -> str:
    return resources.files("modelcache.storage").joinpath("schema", "mysql.sql").read_text("utf-8")


def _fetch_all(conn: Connection, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def _execute(conn: Connection, sql: str, params: Sequence[Any] | None = None) -> int:
    with conn.cursor() as cursor:
        return int(cursor.execute(sql, params))


def _execute_many(conn: Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    with conn.cursor() as cursor:
        cursor.executemany(sql, rows)


def _insert_each(conn: Connection, sql: str, rows: Sequence[Sequence[Any]]) -> list[int]:
    """Insert row by row, so every id is the server's own (no guess at consecutive ids)."""
    ids: list[int] = []
    with conn.cursor() as cursor:
        for row in rows:
            cursor.execute(sql, row)
            ids.append(int(cursor.lastrowid or 0))
    return ids


def _connect(driver: ModuleType, config: MySQLConfig) -> Connection:
    try:
        conn: Connection = driver.connect(
            host=config.host,
            port=config.port,
            user=config.user,
            password=config.password,
            database=config.database,
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
            write_timeout=config.write_timeout,
        )
    except driver.err.Error as exc:
        where = f"{config.host}:{config.port}/{config.database}"
        raise BackendUnavailable(_BACKEND, f"cannot connect to {where}: {_describe(exc)}") from exc
    return conn


def _describe(exc: BaseException) -> str:
    """pymysql errors carry (errno, message); say both, or at least the error's type."""
    if len(exc.args) == 2 and exc.args[1]:
        return f"{exc.args[1]} (error {exc.args[0]})"
    return f"{type(exc).__name__}: {exc}"


class MySQLRowStore(SqlRowStoreBase):
    """RowStore on MySQL, MariaDB or OceanBase (MySQL mode)."""

    name = "mysql"
    mark = "%s"

    def __init__(self, config: MySQLConfig):
        self.config = config
        self._driver: ModuleType | None = None
        self._pool: ConnectionPool | None = None

    @classmethod
    def from_url(cls, url: str, settings: Settings) -> MySQLRowStore:
        return cls(parse_mysql_url(url))

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        try:
            import pymysql
        except ImportError as exc:
            raise MissingDependency("pymysql", "mysql") from exc
        self.close()
        self._driver = pymysql
        self._pool = ConnectionPool(
            partial(_connect, pymysql, self.config),
            pymysql.err.Error,
            size=self.config.pool_size,
            wait_s=self.config.read_timeout,
            ping_after_idle_s=self.config.ping_after_idle_s,
        )
        statements = schema_statements(_read_schema())
        try:
            for statement in statements:
                self._write(statement)
            self._add_missing_columns()
        except BaseException:
            self.close()
            raise

    def _add_missing_columns(self) -> None:
        """Bring a table made by an older release up to date (MySQL has no ADD COLUMN IF NOT EXISTS)."""

        def present() -> bool:
            return bool(
                self._query(
                    "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()"
                    " AND TABLE_NAME = 'mc_entries' AND COLUMN_NAME = 'second_embedding'",
                )[0][0]
            )

        if present():
            return
        try:
            self._write("ALTER TABLE mc_entries ADD COLUMN second_embedding MEDIUMBLOB NULL")
        except ModelCacheError:
            if not present():  # else another replica added it a moment ago
                raise

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def ping(self) -> None:
        self._query("SELECT 1")

    def _run(self, work: Callable[[Connection], T]) -> T:
        """Run `work` on a pooled connection; connection failures become BackendUnavailable."""
        pool, driver = self._pool, self._driver
        if pool is None or driver is None:
            raise BackendUnavailable(self.name, "the store is not started")
        conn = pool.acquire()
        statement_errors = (
            driver.err.IntegrityError,
            driver.err.ProgrammingError,
            driver.err.DataError,
            driver.err.NotSupportedError,
        )
        try:
            result = work(conn)
        except (driver.err.OperationalError, driver.err.InterfaceError) as exc:
            pool.discard(conn)
            raise BackendUnavailable(self.name, _describe(exc)) from exc
        except statement_errors:
            pool.release(conn)
            raise
        except BaseException:
            pool.discard(conn)
            raise
        pool.release(conn)
        return result

    def _transaction(self, work: Callable[[Connection], T]) -> T:
        def run(conn: Connection) -> T:
            conn.begin()
            try:
                result = work(conn)
            except BaseException:
                if conn.open:  # a connection the driver saw break has nothing left to roll back
                    conn.rollback()
                raise
            conn.commit()
            return result

        return self._run(run)

    def _query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        return self._run(lambda conn: _fetch_all(conn, sql, params))

    def _write(self, sql: str, params: Sequence[Any] | None = None) -> int:
        """Run one statement (autocommitted); return the number of rows it changed."""
        return self._run(lambda conn: _execute(conn, sql, params))

    def _write_each(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._transaction(lambda conn: _execute_many(conn, sql, rows))

    # -- tenants -------------------------------------------------------------------------

    def register_tenant(self, tenant: str) -> bool:
        sql = "INSERT IGNORE INTO mc_tenants (name, settings, created_at) VALUES (%s, %s, %s)"
        return self._write(sql, (tenant, "{}", time.time())) > 0

    def set_tenant_settings(self, tenant: str, values: Mapping[str, Any]) -> None:
        text = json.dumps(dict(values))
        sql = (
            "INSERT INTO mc_tenants (name, settings, created_at) VALUES (%s, %s, %s)"
            " ON DUPLICATE KEY UPDATE settings = %s"
        )
        self._write(sql, (tenant, text, time.time(), text))

    # -- entries ---------------------------------------------------------------------------

    def insert(self, entries: Sequence[NewEntry]) -> list[int]:
        now = time.time()
        rows = [insert_params(e, now) for e in entries]
        return self._transaction(lambda conn: _insert_each(conn, _INSERT_ENTRY, rows))

    def get(self, tenant: str, ids: Sequence[int]) -> list[Entry]:
        entries: list[Entry] = []
        for part in chunked([int(i) for i in ids], IN_LIST_CHUNK):
            where = f"tenant = %s AND id IN ({self._marks(len(part))})"
            entries.extend(self._select(where, [tenant, *part]))
        return entries

    def delete(self, tenant: str, ids: Sequence[int]) -> list[int]:
        def work(conn: Connection) -> list[int]:
            deleted: list[int] = []
            for part in chunked([int(i) for i in ids], IN_LIST_CHUNK):
                where = f"tenant = %s AND id IN ({self._marks(len(part))})"
                params = (tenant, *part)
                found = _fetch_all(conn, f"SELECT id FROM mc_entries WHERE {where} FOR UPDATE", params)
                deleted += [int(row[0]) for row in found]
                _execute(conn, f"DELETE FROM mc_entries WHERE {where}", params)
            return deleted

        return self._transaction(work)
