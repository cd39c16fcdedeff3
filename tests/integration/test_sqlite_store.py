"""SQLite row store details the contract suite does not reach: upgrading an older file."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np

from modelcache.storage.base import NewEntry
from modelcache.storage.sqlite import _SCHEMA, SQLiteRowStore


def test_a_file_from_before_second_embeddings_gets_the_column(tmp_path: Path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            _SCHEMA.replace("last_hit_at REAL,\n    second_embedding BLOB", "last_hit_at REAL")
        )
        conn.execute(
            "INSERT INTO mc_entries (tenant, question, answer, context, context_hash, key_hash, embedding,"
            " created_at) VALUES ('gpt', 'q', 'a', '[]', 'c', 'k', ?, 1.0)",
            (np.ones(4, np.float32).tobytes(),),
        )
        assert "second_embedding" not in {row[1] for row in conn.execute("PRAGMA table_info(mc_entries)")}
    store = SQLiteRowStore(path)
    store.start()
    try:
        [old] = store.find_by_keys("gpt", ["k"]).values()
        assert old.second_embedding is None and old.embedding.tolist() == [1.0] * 4
        second = np.arange(3, dtype=np.float32)
        entry = NewEntry("gpt", "q2", "a2", "[]", "c", "k2", np.zeros(4, np.float32))
        [new_id] = store.insert([replace(entry, second_embedding=second)])
        [new] = store.get("gpt", [new_id])
        assert new.second_embedding is not None and new.second_embedding.tolist() == [0.0, 1.0, 2.0]
    finally:
        store.close()
    reopened = SQLiteRowStore(path)
    reopened.start()  # the column is there now: start-up must not try to add it again
    reopened.close()
