-- 003: the outcome of every SMTP session on every host, and the batches
-- that brought them.
--
-- Idempotency. Delivery from mxd is at-least-once: a batch may be resent
-- whole, or its outcomes regrouped into other batches after a reconnect.
-- Each outcome carries its host's journal seq, unique per host, so an outcome
-- is identified by (host_id, seq). outcomes is partitioned by day on start_ts,
-- and PostgreSQL enforces a unique constraint on a partitioned table only if
-- it contains the partition key, so the key is (host_id, seq, start_ts).
-- That is as strong as (host_id, seq): start_ts comes from the journal
-- record, written once when the session began and resent byte for byte, so
-- a resend carries the same start_ts, falls into the same partition and hits
-- the same index entry there. (If a host ever reused a seq for a different
-- session, e.g. a reinstalled host with a wiped journal, the two sessions
-- have different start times and both are kept: nothing is lost.)
-- We chose this over a separate, unpartitioned outcome_keys(host_id, seq)
-- table: that would double the index writes on the hot path and grow without
-- bound, while this key is dropped together with its day's partition.
--
-- The batch key (host_id, batch seq) is recorded in outcome_batches in the
-- same transaction; the batch's dropped/corrupt counts are added to the
-- host's counters only when that key is new, so a batch resent whole does
-- not count its losses twice either.

CREATE TABLE outcome_batches (
	host_id		text NOT NULL,
	seq		bigint NOT NULL,		-- the highest outcome seq in the batch
	received_at	timestamptz NOT NULL DEFAULT now(),
	outcomes	bigint NOT NULL,		-- outcomes in the batch
	stored		bigint NOT NULL,		-- of those, new (not resent)
	dropped		bigint NOT NULL,
	corrupt		bigint NOT NULL,
	PRIMARY KEY (host_id, seq)
);

-- One row per session. direction and starttls hold the enum numbers of
-- mxfleet.proto (Direction, StartTls). Days are UTC days.
CREATE TABLE outcomes (
	host_id		text NOT NULL,
	seq		bigint NOT NULL,
	batch_seq	bigint NOT NULL,	-- the batch that first brought it
	received_at	timestamptz NOT NULL DEFAULT now(),
	session_id	text NOT NULL,
	direction	smallint NOT NULL,
	start_ts	timestamptz NOT NULL,
	end_ts		timestamptz,		-- NULL: not recorded
	local_ip	text NOT NULL,
	local_port	integer NOT NULL,
	remote_ip	text NOT NULL,
	remote_port	integer NOT NULL,
	remote_ehlo	text NOT NULL,
	remote_ptr	text NOT NULL,
	starttls	smallint NOT NULL,
	tls_version	text NOT NULL,
	tls_cipher	text NOT NULL,
	sni		text NOT NULL,
	tls_fail_stage	text NOT NULL,
	tls_fail_reason	text NOT NULL,
	messages	bigint NOT NULL,
	recipients	bigint NOT NULL,
	-- RFC 8460 results per MX tried (outbound only; NULL when none): an
	-- array of objects keyed by the PolicyResult field names of the proto.
	policy_results	jsonb,
	UNIQUE (host_id, seq, start_ts)
) PARTITION BY RANGE (start_ts);

COMMENT ON COLUMN outcomes.direction IS 'mxfleet.v1.Direction: 0 unspecified, 1 inbound, 2 outbound';
COMMENT ON COLUMN outcomes.starttls IS 'mxfleet.v1.StartTls: 0 unspecified, 1 not offered, 2 offered, 3 attempted (failed), 4 established';

-- The safety net: a row whose day partition could not be created still has a
-- place to go. It should stay empty; controld creates day partitions before
-- each batch (outcomes_ensure_partition).
CREATE TABLE outcomes_default PARTITION OF outcomes DEFAULT;

-- Create the partition outcomes_YYYYMMDD for one UTC day unless it exists.
-- Returns true if it created it. Called by controld outside the ingest
-- transaction, so the ACCESS EXCLUSIVE lock that creating a partition takes
-- on outcomes is held for a moment, not for a whole batch. Replicas creating
-- the same day at once are serialized by an advisory lock (class 1836609652
-- = 'mxpt', object = days since 1970-01-01), and the loser finds the table
-- there. If rows of that day already sit in the default partition (put there
-- by hand, or when creation failed), PostgreSQL refuses the new partition:
-- the rows stay in the default one and the day keeps using it.
CREATE FUNCTION outcomes_ensure_partition(day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
	part text := 'outcomes_' || to_char(day, 'YYYYMMDD');
	lo timestamptz := day::timestamp AT TIME ZONE 'UTC';
	hi timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
	IF to_regclass(quote_ident(part)) IS NOT NULL THEN
		RETURN false;
	END IF;
	PERFORM pg_advisory_xact_lock(1836609652, day - date '1970-01-01');
	IF to_regclass(quote_ident(part)) IS NOT NULL THEN
		RETURN false;
	END IF;
	BEGIN
		EXECUTE format('CREATE TABLE %I PARTITION OF outcomes FOR VALUES FROM (%L) TO (%L)',
		    part, lo, hi);
	EXCEPTION
		WHEN check_violation THEN
			RAISE WARNING 'outcomes: rows for % are in outcomes_default; that day stays there', day;
			RETURN false;
		WHEN duplicate_table THEN
			RETURN false;
	END;
	RETURN true;
END
$$;
