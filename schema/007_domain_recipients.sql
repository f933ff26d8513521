-- 007: which recipients of a hosted domain mxd accepts at RCPT time, so an
-- unknown one is refused there and never bounced to an unverified sender
-- (backscatter; docs/control-plane.md, "Recipient checks").
--
-- domains.recipient_check: '' (not set: any local part, mxd warns at start),
-- 'any' (any local part, the operator's choice), 'list' (only the local parts
-- in domain_recipients), 'verify' (each mxd probes the domain's next hop with
-- an RCPT and caches the answer).
-- domain_recipients holds local parts as controld stores them: ASCII
-- lower-cased, keyed by lower(domains.name). Both reach mxd in the
-- configuration snapshot; a change bumps the version like any other.

ALTER TABLE domains ADD COLUMN recipient_check text NOT NULL DEFAULT ''
	CHECK (recipient_check IN ('', 'any', 'list', 'verify'));

CREATE TABLE domain_recipients (
	domain		text NOT NULL CHECK (domain <> ''),	-- lower(domains.name)
	local_part	text NOT NULL CHECK (local_part <> ''),
	created_at	timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (domain, local_part)
);

CREATE TRIGGER domain_recipients_config_ins AFTER INSERT ON domain_recipients
	REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION config_bump();
CREATE TRIGGER domain_recipients_config_del AFTER DELETE ON domain_recipients
	REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION config_bump();
CREATE TRIGGER domain_recipients_config_trunc AFTER TRUNCATE ON domain_recipients
	FOR EACH STATEMENT EXECUTE FUNCTION config_bump_truncate();

-- A removed domain takes its list with it (domains has no key a foreign key
-- could name: its uniqueness is on lower(name)).
CREATE FUNCTION domain_recipients_drop() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	DELETE FROM domain_recipients WHERE domain IN (SELECT lower(name) FROM gone);
	RETURN NULL;
END
$$;

CREATE TRIGGER domains_recipients_drop AFTER DELETE ON domains
	REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION domain_recipients_drop();

CREATE FUNCTION domain_recipients_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	TRUNCATE domain_recipients;
	RETURN NULL;
END
$$;

CREATE TRIGGER domains_recipients_truncate AFTER TRUNCATE ON domains
	FOR EACH STATEMENT EXECUTE FUNCTION domain_recipients_truncate();
