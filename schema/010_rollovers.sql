-- 010: TLSA key rollovers (docs/dns.md, "Rollover").
--
-- rollovers holds one host's rollover as controld/rollover.c encodes it
-- (rollover_encode: key=value lines), so a controld killed between two steps
-- resumes where it was; one row per host (a second rollover of a host waits
-- until the first is done: the row is replaced only when state is done).
-- key_switches is what the configuration snapshot tells the hosts
-- (ConfigSnapshot.key_switches): at the switch step controld inserts the
-- host's row; a change bumps the configuration version (002's triggers).

CREATE TABLE rollovers (
	host_id		text PRIMARY KEY,
	state		text NOT NULL,		-- rollover_encode's text
	done		boolean NOT NULL DEFAULT false,
	started_at	timestamptz NOT NULL DEFAULT now(),
	updated_at	timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE key_switches (
	host_id		text PRIMARY KEY,
	to_spki		text NOT NULL CHECK (to_spki ~ '^[0-9a-f]{64}$'),
	created_at	timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER key_switches_config_ins AFTER INSERT ON key_switches
	REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION config_bump();
CREATE TRIGGER key_switches_config_upd AFTER UPDATE ON key_switches
	REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION config_bump();
CREATE TRIGGER key_switches_config_del AFTER DELETE ON key_switches
	REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION config_bump();
