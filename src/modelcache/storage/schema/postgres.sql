-- ModelCache row store schema for PostgreSQL 12+.
--
-- PostgresRowStore runs this file on start-up, in one transaction under an advisory lock;
-- a DBA may also run it by hand, for example
--   psql -d modelcache -f postgres.sql
-- Every statement is idempotent (IF NOT EXISTS).
--
-- Tenant names and hashes use the "C" collation: comparison and order are by code point,
-- as in SQLite, so "gpt" and "GPT" are two tenants and tenants() lists them in the same order.
-- Times are Unix seconds (DOUBLE PRECISION); embeddings are float32 vectors in native byte order
-- (second_embedding: the verifier's second model, NULL where it was not computed).

CREATE TABLE IF NOT EXISTS mc_tenants (
    name TEXT COLLATE "C" PRIMARY KEY,
    settings TEXT NOT NULL DEFAULT '{}',
    created_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE IF NOT EXISTS mc_entries (
    id BIGSERIAL PRIMARY KEY,
    tenant TEXT COLLATE "C" NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    context TEXT NOT NULL,
    context_hash TEXT COLLATE "C" NOT NULL,
    key_hash TEXT COLLATE "C" NOT NULL,
    embedding BYTEA NOT NULL,
    hit_count BIGINT NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL,
    last_hit_at DOUBLE PRECISION,
    second_embedding BYTEA
);

-- Stores made before the verifier lack the second embedding.
ALTER TABLE mc_entries ADD COLUMN IF NOT EXISTS second_embedding BYTEA;

CREATE INDEX IF NOT EXISTS mc_entries_tenant_key ON mc_entries (tenant, key_hash);

CREATE TABLE IF NOT EXISTS mc_query_log (
    id BIGSERIAL PRIMARY KEY,
    tenant TEXT COLLATE "C" NOT NULL,
    question TEXT NOT NULL,
    context_hash TEXT COLLATE "C" NOT NULL,
    hit BOOLEAN NOT NULL,
    entry_id BIGINT,
    score DOUBLE PRECISION,
    latency_ms DOUBLE PRECISION NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
