-- ModelCache row store schema for MySQL 5.7+, MariaDB 10.3+ and OceanBase (MySQL mode).
--
-- MySQLRowStore runs this file on start-up; a DBA may also run it by hand, for example
--   mysql --default-character-set=utf8mb4 modelcache < mysql.sql
-- Every statement is idempotent (CREATE TABLE IF NOT EXISTS) and ends with a semicolon
-- at the end of a line. Comments are whole lines starting with "--".
--
-- Tenant names and hashes use a binary collation, so that "gpt" and "GPT" are two tenants.
-- Times are Unix seconds (DOUBLE); embeddings are float32 vectors in native byte order
-- (second_embedding: the verifier's second model, NULL where it was not computed).
-- A store made before second_embedding existed gets the column added by MySQLRowStore.

CREATE TABLE IF NOT EXISTS mc_tenants (
    name VARCHAR(64) NOT NULL,
    settings TEXT NOT NULL,
    created_at DOUBLE NOT NULL,
    PRIMARY KEY (name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS mc_entries (
    id BIGINT NOT NULL AUTO_INCREMENT,
    tenant VARCHAR(64) NOT NULL,
    question MEDIUMTEXT NOT NULL,
    answer MEDIUMTEXT NOT NULL,
    context MEDIUMTEXT NOT NULL,
    context_hash VARCHAR(128) NOT NULL,
    key_hash VARCHAR(128) NOT NULL,
    embedding MEDIUMBLOB NOT NULL,
    hit_count BIGINT NOT NULL DEFAULT 0,
    created_at DOUBLE NOT NULL,
    last_hit_at DOUBLE NULL,
    second_embedding MEDIUMBLOB NULL,
    PRIMARY KEY (id),
    KEY mc_entries_tenant_key (tenant, key_hash),
    KEY mc_entries_tenant (tenant)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS mc_query_log (
    id BIGINT NOT NULL AUTO_INCREMENT,
    tenant VARCHAR(64) NOT NULL,
    question MEDIUMTEXT NOT NULL,
    context_hash VARCHAR(128) NOT NULL,
    hit TINYINT NOT NULL,
    entry_id BIGINT NULL,
    score DOUBLE NULL,
    latency_ms DOUBLE NOT NULL,
    created_at DOUBLE NOT NULL,
    PRIMARY KEY (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
