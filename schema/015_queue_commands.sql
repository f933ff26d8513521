-- 015: remote queue control (mailctl queue, docs/control-plane.md "Queue
-- control") and the queue counts of the heartbeat.
--
-- queue_commands: one row per host a mailctl queue command went to. Any
-- replica may take the call: it inserts the rows, the replica holding the
-- host's WatchQueueCommands stream takes them (taken) and pushes them, the
-- host's answer (a packed QueueHostResult) is stored with done, and the
-- replica that inserted them reads it back. Rows older than a day are
-- deleted as new ones come.
CREATE TABLE queue_commands (
	id bigserial PRIMARY KEY,
	host_id text NOT NULL,
	op text NOT NULL,
	arg text NOT NULL DEFAULT '',
	max_messages integer NOT NULL DEFAULT 1000,
	created timestamptz NOT NULL DEFAULT now(),
	taken timestamptz,
	done timestamptz,
	result bytea
);
CREATE INDEX queue_commands_pending ON queue_commands (host_id) WHERE taken IS NULL;

-- As the host's last heartbeat reported them.
ALTER TABLE hosts
	ADD COLUMN queue_messages bigint NOT NULL DEFAULT 0,
	ADD COLUMN queue_oldest timestamptz;
