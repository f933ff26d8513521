-- 013: sessions that carried TLS reports (issue 12; docs/reports.md,
-- "Aggregation"). RFC 8460 5.3: a report about the delivery of reports
-- would make reports about reports, so the sessions mxd records as
-- tlsrpt_exempt (every message had the reports' envelope sender) are left
-- out of the aggregation.
--
-- On the partitioned parent, ADD COLUMN reaches every existing day
-- partition (and outcomes_default); a constant default is stored in the
-- catalog (PostgreSQL 11 and later), so no partition is rewritten.
ALTER TABLE outcomes ADD COLUMN tlsrpt_exempt boolean NOT NULL DEFAULT false;

-- The reports' envelope sender every mxd gets (ConfigSnapshot.tlsrpt_sender):
-- controld.conf reports.mail_from of the controld that started last, written
-- at its start. Kept here, not only in controld's memory, so that a changed
-- mail_from makes a new config version (the trigger) and reaches every host,
-- and so that all replicas hand out the same one. NULL: none.
CREATE TABLE tlsrpt_sender (
	singleton	boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	sender		text
);
INSERT INTO tlsrpt_sender (singleton, sender) VALUES (true, NULL);

-- An UPDATE that changes nothing (WHERE ... IS DISTINCT FROM) touches no
-- row and makes no new version.
CREATE TRIGGER tlsrpt_sender_config_upd AFTER UPDATE ON tlsrpt_sender
	REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION config_bump();
