-- 009: which records controld has pushed (RFC 2136) for each hosted domain,
-- by (owner, type) pair, so that the next push also removes the pairs the
-- domain no longer needs (a host taken out of it, a DKIM selector retired)
-- and never touches a pair it did not publish. A pair another domain still
-- publishes (two domains served by one host share its A and TLSA records)
-- is kept. Pushes are serialized by an advisory lock (docs/dns.md, "Push").

CREATE TABLE dns_pushed (
	domain		text NOT NULL,		-- lower(domains.name)
	zone		text NOT NULL,		-- the zone it was pushed to
	owner		text NOT NULL,		-- absolute, lower case, final dot
	type		text NOT NULL,
	pushed_at	timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (domain, owner, type)
);
