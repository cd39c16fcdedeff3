"""MySQLRowStore through the RowStore protocol, against the real MariaDB / MySQL server."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pymysql
import pytest

from modelcache.errors import BackendUnavailable, ConfigurationError
from modelcache.settings import Settings
from modelcache.storage import RowStore, open_row_store
from modelcache.storage.base import NewEntry, QueryLogRecord
from modelcache.storage.mysql import MySQLConfig, MySQLRowStore, parse_mysql_url, schema_statements
from tests.backends import free_port
from tests.backends.mysql import MySQLServer

DIM = 16
TABLES = ("mc_entries", "mc_query_log", "mc_tenants")


# -- helpers ---------------------------------------------------------------------------------


def new_entry(
    tenant: str, question: str, *, key: str | None = None, answer: str = "", seed: int = 0
) -> NewEntry:
    vector = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return NewEntry(
        tenant=tenant,
        question=question,
        answer=answer or f"answer to {question}",
        context="[]",
        context_hash="c" * 64,
        key_hash=key or f"k-{question}",
        embedding=vector,
    )


def started(config: MySQLConfig) -> MySQLRowStore:
    store = MySQLRowStore(config)
    store.start()
    return store


def sql(server: MySQLServer, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with server.connect() as conn, conn.cursor() as cursor:
        cursor.execute(statement, params)
        return list(cursor.fetchall())


def kill_store_connections(server: MySQLServer) -> int:
    """Kill, on the server side, every connection to the test database but our own."""
    with server.connect() as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND ID <> CONNECTION_ID()",
            (server.database,),
        )
        ids = [row[0] for row in cursor.fetchall()]
        for thread_id in ids:
            cursor.execute(f"KILL {int(thread_id)}")
    return len(ids)


def settled_connection_count(server: MySQLServer) -> int:
    """Connections to the test database but our own, once closed ones have left the list."""
    statement = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = %s AND ID <> CONNECTION_ID()"
    deadline = time.monotonic() + 3
    while True:
        count = int(sql(server, statement, (server.database,))[0][0])
        if count <= 2 or time.monotonic() > deadline:
            return count
        time.sleep(0.1)


class TcpProxy:
    """A TCP forwarder that can be stopped and started: the server going away and coming back."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = free_port()
        self._stopping = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        self._stopping.clear()
        listener = socket.create_server(("127.0.0.1", self.port))
        listener.settimeout(0.05)
        self._sockets = [listener]
        self._spawn(self._accept, listener)

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            sockets, self._sockets = self._sockets, []
            threads, self._threads = self._threads, []
        for sock in sockets:
            _shut(sock)
        for thread in threads:
            thread.join(timeout=5)

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, upstream]
            self._spawn(self._pump, client, upstream)
            self._spawn(self._pump, upstream, client)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _shut(sink)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def config(mysql_server: MySQLServer) -> MySQLConfig:
    return parse_mysql_url(mysql_server.url)


@pytest.fixture
def store(config: MySQLConfig, mysql_server: MySQLServer) -> Iterator[MySQLRowStore]:
    opened = started(config)
    try:
        yield opened
    finally:
        opened.close()
        for table in TABLES:
            sql(mysql_server, f"DELETE FROM {table}")


# -- URL and schema ------------------------------------------------------------------------------


def test_url_parts_are_decoded_and_defaulted():
    config = parse_mysql_url("mysql+pymysql://app%40tenant:p%40ss%2Fw%3Ard@db.example:3307/cache%5Fdb")
    assert (config.user, config.password, config.host, config.port, config.database) == (
        "app@tenant",
        "p@ss/w:rd",
        "db.example",
        3307,
        "cache_db",
    )
    default = parse_mysql_url("mysql://root@localhost/modelcache")
    assert default.port == 3306
    assert default.password == ""
    assert default.pool_size == 10
    assert default.connect_timeout == 3.0
    assert "p@ss" not in repr(config)


def test_url_options_are_read():
    config = parse_mysql_url("oceanbase://u:p@h:2881/db?pool_size=3&connect_timeout=1.5&read_timeout=7")
    assert (config.pool_size, config.connect_timeout, config.read_timeout) == (3, 1.5, 7.0)


@pytest.mark.parametrize(
    "url",
    [
        "mysql://root@localhost",
        "mysql://root@localhost/",
        "mysql://localhost/db",
        "mysql://root@/db",
        "mysql://root@localhost:99999/db",
        "mysql://root@localhost:port/db",
        "mysql://root@localhost/db?pool_size=0",
        "mysql://root@localhost/db?pool_size=2.5",
        "mysql://root@localhost/db?connect_timeout=-1",
        "mysql://root@localhost/db?connect_timeout=nan",
        "mysql://root@localhost/db?colour=blue",
        "postgresql://root@localhost/db",
    ],
)
def test_bad_urls_are_configuration_errors(url: str):
    with pytest.raises(ConfigurationError):
        parse_mysql_url(url)


@pytest.mark.parametrize("scheme", ["mysql", "mysql+pymysql", "oceanbase"])
def test_registry_opens_mysql_store_for_each_scheme(scheme: str):
    store = open_row_store(Settings(row_store=f"{scheme}://root@127.0.0.1:3306/db"))
    assert isinstance(store, MySQLRowStore)
    assert isinstance(store, RowStore)
    assert store.name == "mysql"


def test_schema_statements_split_on_line_end_semicolons():
    script = "-- a comment; with a semicolon\nCREATE TABLE a (x INT);\n\n  -- more\nCREATE TABLE b (y INT);\n"
    assert schema_statements(script) == ["CREATE TABLE a (x INT)", "CREATE TABLE b (y INT)"]


def test_schema_has_long_text_columns_and_tenant_indexes(store: MySQLRowStore, mysql_server: MySQLServer):
    columns = dict(
        sql(
            mysql_server,
            "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS"
            " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'mc_entries'",
            (mysql_server.database,),
        )
    )
    assert {columns[c] for c in ("question", "answer", "context")} == {"mediumtext"}
    assert columns["embedding"].endswith("blob")
    indexes = sql(
        mysql_server,
        "SELECT INDEX_NAME, GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX)"
        " FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'mc_entries'"
        " GROUP BY INDEX_NAME",
        (mysql_server.database,),
    )
    assert {columns for _, columns in indexes} >= {"tenant,key_hash", "tenant", "id"}
    charsets = sql(
        mysql_server,
        "SELECT DISTINCT CHARACTER_SET_NAME FROM information_schema.COLUMNS"
        " WHERE TABLE_SCHEMA = %s AND CHARACTER_SET_NAME IS NOT NULL",
        (mysql_server.database,),
    )
    assert charsets == [("utf8mb4",)]


def test_start_twice_and_a_second_store_on_the_same_schema(store: MySQLRowStore, config: MySQLConfig):
    store.register_tenant("gpt")
    store.start()
    other = started(config)
    try:
        assert other.tenants() == ["gpt"]
    finally:
        other.close()


# -- entries ----------------------------------------------------------------------------------


def test_insert_returns_ids_in_order_and_get_reads_them_back(store: MySQLRowStore):
    before = time.time()
    entries = [new_entry("gpt", f"q{i}", seed=i) for i in range(3)]
    ids = store.insert(entries)
    assert len(set(ids)) == 3
    assert ids == sorted(ids)
    by_id = {e.id: e for e in store.get("gpt", ids)}
    for entry_id, new in zip(ids, entries, strict=True):
        got = by_id[entry_id]
        assert (got.tenant, got.question, got.answer, got.key_hash) == (
            new.tenant,
            new.question,
            new.answer,
            new.key_hash,
        )
        assert (got.context, got.context_hash, got.hit_count, got.last_hit_at) == ("[]", "c" * 64, 0, None)
        assert before - 1 <= got.created_at <= time.time() + 1
    assert store.insert([]) == []


def test_embeddings_round_trip_bit_for_bit(store: MySQLRowStore):
    vector = np.random.default_rng(7).standard_normal(1024).astype(np.float32)
    vector[:4] = [-0.0, np.float32(1e-45), np.finfo(np.float32).max, np.finfo(np.float32).tiny]
    entry = replace(new_entry("gpt", "v"), embedding=vector)
    [entry_id] = store.insert([entry])
    [got] = store.get("gpt", [entry_id])
    assert got.embedding.dtype == np.float32
    assert got.embedding.tobytes() == vector.tobytes()


def test_unicode_and_long_text_round_trip(store: MySQLRowStore):
    question = "今天天气怎么样？🌤️ 𠜎𠜱 naïve café — ‘quotes’ \\ ' \" %s %(x)s"
    answer = "晴，最高 25°C 😀" * 5000  # > 64 KiB of UTF-8: needs MEDIUMTEXT
    context = '[{"role": "system", "content": "你是助手 🤖"}]'
    entry = replace(new_entry("gpt", question, answer=answer), context=context)
    [entry_id] = store.insert([entry])
    [got] = store.get("gpt", [entry_id])
    assert (got.question, got.answer, got.context) == (question, answer, context)
    assert store.find_by_keys("gpt", [entry.key_hash])[entry.key_hash].question == question


def test_find_by_keys_returns_the_newest_entry_per_existing_key(store: MySQLRowStore):
    store.insert([new_entry("gpt", "old", key="k1"), new_entry("gpt", "other", key="k2")])
    [newest] = store.insert([new_entry("gpt", "new", key="k1")])
    found = store.find_by_keys("gpt", ["k1", "k2", "missing"])
    assert set(found) == {"k1", "k2"}
    assert found["k1"].id == newest
    assert found["k1"].question == "new"
    assert store.find_by_keys("gpt", []) == {}


def test_find_by_keys_and_get_work_past_one_chunk(store: MySQLRowStore):
    entries = [new_entry("gpt", f"q{i}", seed=i) for i in range(1203)]
    ids = store.insert(entries)
    keys = [e.key_hash for e in entries]
    assert set(store.find_by_keys("gpt", keys)) == set(keys)
    assert sorted(e.id for e in store.get("gpt", ids)) == ids
    assert sorted(store.delete("gpt", ids[:-1])) == ids[:-1]
    assert store.ids("gpt").tolist() == ids[-1:]


def test_get_ignores_unknown_ids_and_accepts_numpy_ints(store: MySQLRowStore):
    ids = store.insert([new_entry("gpt", "a"), new_entry("gpt", "b")])
    got = store.get("gpt", [*np.array(ids, dtype=np.int64), 10**12])
    assert sorted(e.id for e in got) == ids
    assert store.get("gpt", []) == []


def test_update_answers_changes_only_the_given_rows(store: MySQLRowStore):
    first, second = store.insert([new_entry("gpt", "a"), new_entry("gpt", "b", answer="keep")])
    store.update_answers("gpt", {first: "新的回答 ✅"})
    answers = {e.id: e.answer for e in store.get("gpt", [first, second])}
    assert answers == {first: "新的回答 ✅", second: "keep"}
    store.update_answers("gpt", {})


def test_delete_returns_the_ids_that_existed(store: MySQLRowStore):
    ids = store.insert([new_entry("gpt", f"q{i}") for i in range(4)])
    assert sorted(store.delete("gpt", [ids[0], ids[2], 10**12])) == [ids[0], ids[2]]
    assert store.delete("gpt", [ids[0]]) == []
    assert store.ids("gpt").tolist() == [ids[1], ids[3]]
    assert store.delete("gpt", []) == []


def test_delete_tenant_rows_keeps_the_tenant_registered(store: MySQLRowStore):
    store.register_tenant("gpt")
    store.set_tenant_settings("gpt", {"threshold_short": 0.9})
    store.insert([new_entry("gpt", f"q{i}") for i in range(5)])
    assert store.delete_tenant_rows("gpt") == 5
    assert store.count("gpt") == 0
    assert store.delete_tenant_rows("gpt") == 0
    assert store.tenants() == ["gpt"]
    assert store.tenant_settings("gpt") == {"threshold_short": 0.9}


def test_count_and_ids(store: MySQLRowStore):
    assert store.count("gpt") == 0
    empty = store.ids("gpt")
    assert empty.dtype == np.int64
    assert empty.size == 0
    ids = store.insert([new_entry("gpt", f"q{i}") for i in range(6)])
    assert store.count("gpt") == 6
    assert store.ids("gpt").tolist() == ids


def test_iter_vectors_yields_every_row_in_batches(store: MySQLRowStore):
    entries = [new_entry("gpt", f"q{i}", seed=i) for i in range(10)]
    ids = store.insert(entries)
    batches = list(store.iter_vectors("gpt", 3))
    assert [len(batch_ids) for batch_ids, _ in batches] == [3, 3, 3, 1]
    all_ids = np.concatenate([batch_ids for batch_ids, _ in batches])
    vectors = np.concatenate([batch_vectors for _, batch_vectors in batches])
    assert all_ids.dtype == np.int64
    assert all_ids.tolist() == ids
    assert vectors.dtype == np.float32
    assert np.array_equal(vectors, np.stack([e.embedding for e in entries]))
    assert list(store.iter_vectors("nobody", 3)) == []


def test_a_failed_insert_writes_nothing_and_leaves_the_store_usable(store: MySQLRowStore):
    broken = replace(new_entry("gpt", "b"), question=None)  # NOT NULL column
    with pytest.raises(pymysql.err.IntegrityError):
        store.insert([new_entry("gpt", "a"), broken])
    assert store.count("gpt") == 0
    assert len(store.insert([new_entry("gpt", "c")])) == 1


# -- tenants ------------------------------------------------------------------------------------


def test_tenant_gpt_never_sees_rows_of_gpt1(store: MySQLRowStore):
    mine = store.insert([new_entry("gpt", "q", key="same")])
    theirs = store.insert([new_entry("gpt1", "q", key="same"), new_entry("GPT", "q", key="same")])
    assert store.find_by_keys("gpt", ["same"])["same"].id == mine[0]
    assert store.get("gpt", theirs) == []
    assert store.count("gpt") == 1
    assert store.ids("gpt").tolist() == mine
    assert [b.tolist() for b, _ in store.iter_vectors("gpt", 10)] == [mine]
    store.update_answers("gpt", {theirs[0]: "overwritten"})
    assert store.delete("gpt", theirs) == []
    assert store.delete_tenant_rows("gpt") == 1
    assert [e.answer for e in store.get("gpt1", theirs[:1])] == ["answer to q"]
    assert store.count("gpt1") == 1
    assert store.count("GPT") == 1


def test_register_tenant_is_idempotent(store: MySQLRowStore):
    assert store.register_tenant("gpt") is True
    assert store.register_tenant("gpt") is False
    assert store.register_tenant("gpt1") is True
    assert store.tenants() == ["gpt", "gpt1"]


def test_register_tenant_is_race_safe(store: MySQLRowStore):
    with ThreadPoolExecutor(8) as pool:
        created = list(pool.map(lambda _: store.register_tenant("raced"), range(32)))
    assert created.count(True) == 1
    assert store.tenants() == ["raced"]


def test_tenant_settings(store: MySQLRowStore):
    assert store.tenant_settings("gpt") == {}
    store.set_tenant_settings("gpt", {"threshold_short": 0.91, "note": "中文"})
    assert store.tenant_settings("gpt") == {"threshold_short": 0.91, "note": "中文"}
    assert store.tenants() == ["gpt"]
    store.set_tenant_settings("gpt", {"threshold_long": 0.7})
    assert store.tenant_settings("gpt") == {"threshold_long": 0.7}
    assert store.register_tenant("gpt") is False
    assert store.tenant_settings("gpt1") == {}


# -- counters and log ------------------------------------------------------------------------


def test_add_hits_accumulates_counts_and_records_the_time(store: MySQLRowStore):
    first, second = store.insert([new_entry("gpt", "a"), new_entry("gpt", "b")])
    store.add_hits({first: 2, 10**12: 1}, at=1_700_000_000.25)
    store.add_hits({first: 3, second: 1}, at=1_700_000_001.5)
    hits = {e.id: (e.hit_count, e.last_hit_at) for e in store.get("gpt", [first, second])}
    assert hits == {first: (5, 1_700_000_001.5), second: (1, 1_700_000_001.5)}
    store.add_hits({}, at=0.0)


def test_write_query_log(store: MySQLRowStore, mysql_server: MySQLServer):
    records = [
        QueryLogRecord("gpt", "你好 👋", "h1", True, 42, 0.93, 1.25, 1_700_000_000.5),
        QueryLogRecord("gpt", "miss", "h2", False, None, None, 0.5, 1_700_000_001.0),
    ]
    store.write_query_log(records)
    store.write_query_log([])
    rows = sql(
        mysql_server,
        "SELECT tenant, question, context_hash, hit, entry_id, score, latency_ms, created_at"
        " FROM mc_query_log ORDER BY id",
    )
    assert [QueryLogRecord(r[0], r[1], r[2], bool(r[3]), *r[4:]) for r in rows] == records


# -- concurrency ---------------------------------------------------------------------------------


def test_concurrent_inserts_from_8_threads(store: MySQLRowStore):
    def work(thread: int) -> list[tuple[int, str]]:
        written = []
        for batch in range(10):
            questions = [f"t{thread}-b{batch}-{i}" for i in range(3)]
            ids = store.insert([new_entry("gpt", q) for q in questions])
            written += list(zip(ids, questions, strict=True))
        return written

    with ThreadPoolExecutor(8) as pool:
        written = [pair for part in pool.map(work, range(8)) for pair in part]
    ids = [entry_id for entry_id, _ in written]
    assert len(set(ids)) == 8 * 10 * 3
    assert store.count("gpt") == 240
    assert {e.id: e.question for e in store.get("gpt", ids)} == dict(written)


def test_the_pool_never_opens_more_than_pool_size_connections(config: MySQLConfig, mysql_server: MySQLServer):
    store = started(replace(config, pool_size=2))
    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: store.insert([new_entry("gpt", f"q{i}")]), range(64)))
        assert 1 <= settled_connection_count(mysql_server) <= 2
        assert store.count("gpt") == 64
    finally:
        store.close()
        sql(mysql_server, "DELETE FROM mc_entries")


# -- failures ------------------------------------------------------------------------------------


def test_unreachable_port_is_backend_unavailable_fast():
    store = MySQLRowStore.from_url(f"mysql://root@127.0.0.1:{free_port()}/db", Settings())
    began = time.monotonic()
    with pytest.raises(BackendUnavailable) as info:
        store.start()
    assert time.monotonic() - began < 5
    assert info.value.backend == "mysql"
    assert info.value.http_status == 503


def test_unroutable_host_is_backend_unavailable_within_the_connect_timeout():
    store = MySQLRowStore.from_url("mysql://root@192.0.2.1:3306/db", Settings())  # TEST-NET-1
    began = time.monotonic()
    with pytest.raises(BackendUnavailable):
        store.start()
    assert time.monotonic() - began < 5


def test_wrong_password_is_backend_unavailable(config: MySQLConfig):
    store = MySQLRowStore(replace(config, user="nobody_here", password="wrong"))
    with pytest.raises(BackendUnavailable, match=r"nobody_here|denied"):
        store.start()


def test_calls_before_start_or_after_close_are_backend_unavailable(config: MySQLConfig):
    store = MySQLRowStore(config)
    with pytest.raises(BackendUnavailable):
        store.count("gpt")
    store.start()
    store.ping()
    store.close()
    with pytest.raises(BackendUnavailable):
        store.ping()


def test_connections_killed_by_the_server_are_replaced(store: MySQLRowStore, mysql_server: MySQLServer):
    store.register_tenant("gpt")
    assert kill_store_connections(mysql_server) >= 1
    with contextlib.suppress(BackendUnavailable):  # used again at once: may fail, but only so
        store.tenants()
    assert store.tenants() == ["gpt"]
    assert kill_store_connections(mysql_server) >= 1
    time.sleep(store.config.ping_after_idle_s + 0.1)  # idle long enough to be pinged first
    assert store.tenants() == ["gpt"]


def test_store_recovers_when_the_server_comes_back(config: MySQLConfig, mysql_server: MySQLServer):
    proxy = TcpProxy((config.host, config.port))
    proxy.start()
    store = started(replace(config, port=proxy.port, pool_size=2, read_timeout=2, ping_after_idle_s=0.2))
    try:
        with ThreadPoolExecutor(4) as pool:  # fill the pool with open connections
            list(pool.map(lambda i: store.insert([new_entry("gpt", f"q{i}")]), range(8)))
        proxy.stop()
        for _ in range(5):
            began = time.monotonic()
            with pytest.raises(BackendUnavailable):
                store.count("gpt")
            assert time.monotonic() - began < 5
        time.sleep(0.3)
        proxy.start()
        assert store.count("gpt") == 8
        with ThreadPoolExecutor(4) as pool:  # no pool slot was lost to the failures
            assert list(pool.map(lambda _: store.count("gpt"), range(8))) == [8] * 8
    finally:
        store.close()
        proxy.stop()
        sql(mysql_server, "DELETE FROM mc_entries")


def test_fixture_url_points_at_a_fresh_test_database(mysql_server: MySQLServer):
    assert urlsplit(mysql_server.url).path == f"/{mysql_server.database}"
    assert mysql_server.database.startswith("mc_test_")
    assert sql(mysql_server, "SELECT DATABASE()") == [(mysql_server.database,)]


def test_a_table_from_before_second_embeddings_gets_the_column(
    config: MySQLConfig, mysql_server: MySQLServer
):
    """Start-up adds the verifier's column to an older table; its rows read back without one."""
    for table in TABLES:
        sql(mysql_server, f"DROP TABLE IF EXISTS {table}")
    try:
        old = schema_statements(resources_schema().replace("    second_embedding MEDIUMBLOB NULL,\n", ""))
        for statement in old:
            sql(mysql_server, statement)
        sql(
            mysql_server,
            "INSERT INTO mc_entries (tenant, question, answer, context, context_hash, key_hash, embedding,"
            " created_at) VALUES ('gpt', 'q', 'a', '[]', 'c', 'k', %s, 1.0)",
            (np.ones(DIM, np.float32).tobytes(),),
        )
        store = started(config)
        started(config).close()  # a second replica finds the column there
        try:
            [old_row] = store.find_by_keys("gpt", ["k"]).values()
            assert old_row.second_embedding is None
            second = np.arange(4, dtype=np.float32)
            [new_id] = store.insert([replace(new_entry("gpt", "q2"), second_embedding=second)])
            [new_row] = store.get("gpt", [new_id])
            assert (
                new_row.second_embedding is not None and new_row.second_embedding.tolist() == second.tolist()
            )
        finally:
            store.close()
    finally:
        for table in TABLES:
            sql(mysql_server, f"DROP TABLE IF EXISTS {table}")
        started(config).close()  # the current schema again, for the tests after this one


def resources_schema() -> str:
    from importlib import resources

    return resources.files("modelcache.storage").joinpath("schema", "mysql.sql").read_text("utf-8")
