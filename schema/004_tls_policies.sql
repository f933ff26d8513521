-- 004: outbound TLS policies per destination domain, distributed with the
-- domains and routes in the configuration snapshot. Modes follow Postfix's
-- smtp_tls_security_level so operators read them at a glance. A change bumps
-- the configuration version like any other (002's triggers).

CREATE TABLE tls_policies (
	domain		text NOT NULL CHECK (domain <> ''),
	mode		text NOT NULL CHECK (mode IN
			    ('none', 'may', 'encrypt', 'dane', 'dane-only', 'verify', 'secure')),
	created_at	timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX tls_policies_domain_key ON tls_policies (lower(domain));

CREATE TRIGGER tls_policies_config_ins AFTER INSERT ON tls_policies
	REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION config_bump();
CREATE TRIGGER tls_policies_config_upd AFTER UPDATE ON tls_policies
	REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION config_bump();
CREATE TRIGGER tls_policies_config_del AFTER DELETE ON tls_policies
	REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION config_bump();
CREATE TRIGGER tls_policies_config_trunc AFTER TRUNCATE ON tls_policies
	FOR EACH STATEMENT EXECUTE FUNCTION config_bump_truncate();
