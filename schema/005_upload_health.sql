-- 005: outcome upload health per host, as the host's heartbeat reports it
-- (docs/control-plane.md, "Refused batches").
--
-- batches_refused: batches controld refused (RESOURCE_EXHAUSTED,
-- INVALID_ARGUMENT) since the host's mxd last started.
-- outcomes_quarantined: records the host set aside after controld refused
-- them even alone; they sit in <spool_dir>/journal-quarantine/ until an
-- operator deals with them. Both are the last values reported, not sums:
-- controld's /metrics counts their increases.
ALTER TABLE hosts
	ADD COLUMN batches_refused bigint NOT NULL DEFAULT 0,
	ADD COLUMN outcomes_quarantined bigint NOT NULL DEFAULT 0;
