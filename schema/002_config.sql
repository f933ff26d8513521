-- 002: the configuration controld distributes to the fleet (domains, routes)
-- and its version.
--
-- config_state.version is the snapshot version mxd hosts compare against.
-- Triggers bump it in the same transaction as any change to domains or
-- routes, whoever makes the change (controld or an operator in psql), so a
-- snapshot read in one REPEATABLE READ transaction is always a version and
-- exactly its contents. The bump also NOTIFYs channel mxfleet_config (payload:
-- the new version) at commit, so every controld replica learns of a change
-- made through another and can push it on WatchConfig.

CREATE TABLE config_state (
	singleton	boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	version		bigint NOT NULL
);
-- 1, not 0: a host that has no snapshot yet says have_version = 0.
INSERT INTO config_state (singleton, version) VALUES (true, 1);

-- Hosted domains and where their mail goes. Names are kept as given (the
-- admin API validates and normalizes them); uniqueness ignores ASCII case.
CREATE TABLE domains (
	name		text NOT NULL CHECK (name <> ''),
	next_hop	text NOT NULL DEFAULT '',	-- smtp:HOST:PORT, lmtp:HOST:PORT, lmtp:unix:/PATH
	created_at	timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX domains_name_key ON domains (lower(name));

-- Outbound routes, tried in id order (insertion order). '' / 0 match anything.
-- A route is identified by its whole content: that is how mailctl names one.
CREATE TABLE routes (
	id			bigserial PRIMARY KEY,
	match_sender_domain	text NOT NULL DEFAULT '',
	match_recipient_domain	text NOT NULL DEFAULT '',
	min_attempt		bigint NOT NULL DEFAULT 0,
	transport		text NOT NULL CHECK (transport <> ''),	-- smtp:HOST:PORT, submission:HOST:PORT
	created_at		timestamptz NOT NULL DEFAULT now(),
	UNIQUE (match_sender_domain, match_recipient_domain, min_attempt, transport)
);

-- Statement-level, with the changed rows at hand: a statement that changed
-- nothing (a DELETE that matched no row, an INSERT ... ON CONFLICT DO
-- NOTHING that hit a conflict) does not make a new version.
CREATE FUNCTION config_bump_version() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	v bigint;
BEGIN
	UPDATE config_state SET version = version + 1 RETURNING version INTO v;
	PERFORM pg_notify('mxfleet_config', v::text);
	RETURN v;
END
$$;

CREATE FUNCTION config_bump() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF EXISTS (SELECT 1 FROM changed) THEN
		PERFORM config_bump_version();
	END IF;
	RETURN NULL;
END
$$;

-- TRUNCATE has no transition table: it always counts as a change.
CREATE FUNCTION config_bump_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM config_bump_version();
	RETURN NULL;
END
$$;

-- Transition tables allow one event per trigger: three triggers per table.
CREATE TRIGGER domains_config_ins AFTER INSERT ON domains
	REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION config_bump();
CREATE TRIGGER domains_config_upd AFTER UPDATE ON domains
	REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION config_bump();
CREATE TRIGGER domains_config_del AFTER DELETE ON domains
	REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION config_bump();
CREATE TRIGGER domains_config_trunc AFTER TRUNCATE ON domains
	FOR EACH STATEMENT EXECUTE FUNCTION config_bump_truncate();

CREATE TRIGGER routes_config_ins AFTER INSERT ON routes
	REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION config_bump();
CREATE TRIGGER routes_config_upd AFTER UPDATE ON routes
	REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION config_bump();
CREATE TRIGGER routes_config_del AFTER DELETE ON routes
	REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION config_bump();
CREATE TRIGGER routes_config_trunc AFTER TRUNCATE ON routes
	FOR EACH STATEMENT EXECUTE FUNCTION config_bump_truncate();
