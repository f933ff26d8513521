-- 001: the fleet registry.
--
-- Migrations are applied by controld (db_migrate) in version order, each in
-- its own transaction, and recorded in schema_migrations, which controld
-- creates itself before reading it:
--   schema_migrations(version integer PRIMARY KEY, name text, checksum text,
--                     applied_at timestamptz)
-- So a migration file holds no BEGIN/COMMIT and nothing that refuses to run
-- inside a transaction (CREATE INDEX CONCURRENTLY, VACUUM).

-- One row per mxd host. Register and Heartbeat upsert it; ingest creates it
-- if a batch arrives first and keeps the counters. The counters are what the
-- host delivered, counted once: outcomes newly stored (resends excluded), and
-- the records the host reported lost to its disk budget (dropped) or skipped
-- as corrupt in its journal (corrupt).
CREATE TABLE hosts (
	host_id		text PRIMARY KEY,
	version		text NOT NULL DEFAULT '',
	listen		text[] NOT NULL DEFAULT '{}',
	first_seen	timestamptz NOT NULL DEFAULT now(),
	registered_at	timestamptz,
	last_seen	timestamptz NOT NULL DEFAULT now(),
	journal_backlog	bigint NOT NULL DEFAULT 0,
	config_version	bigint NOT NULL DEFAULT 0,	-- the snapshot the host runs
	cert_not_after	timestamptz,
	outcomes	bigint NOT NULL DEFAULT 0,
	dropped		bigint NOT NULL DEFAULT 0,
	corrupt		bigint NOT NULL DEFAULT 0
);
