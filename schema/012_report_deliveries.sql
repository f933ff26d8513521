-- 012: the TLS reports controld sends (RFC 8460; docs/reports.md, "Sending").
-- One delivery per (day, policy domain, kind, rua URI): the unique key is what
-- keeps a report from ever being queued twice for the same rua, whichever
-- replica plans it and however often. The report's JSON is kept as planned,
-- so every attempt (and every rua) carries the same bytes (RFC 8460 5.1).

CREATE TABLE report_deliveries (
	id		bigserial PRIMARY KEY,
	day		date NOT NULL,
	policy_domain	text NOT NULL,
	kind		text NOT NULL CHECK (kind IN ('domain', 'host')),
	rua		text NOT NULL,		-- the URI as published
	scheme		text NOT NULL CHECK (scheme IN ('mailto', 'https')),
	target		text NOT NULL,		-- mailto: the address; https: the URL
	report_id	text NOT NULL,
	report_json	text NOT NULL,		-- what is gzipped and sent
	state		text NOT NULL DEFAULT 'pending'
			CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'suppressed')),
	attempts	integer NOT NULL DEFAULT 0,
	next_attempt	timestamptz NOT NULL,
	first_attempt	timestamptz,
	last_error	text NOT NULL DEFAULT '',
	sent_at		timestamptz,
	created_at	timestamptz NOT NULL DEFAULT now(),
	UNIQUE (day, policy_domain, kind, rua)
);
CREATE INDEX report_deliveries_due ON report_deliveries (next_attempt) WHERE state = 'pending';

-- The days whose deliveries were planned by the daily round (a day is
-- looked up in DNS once; `mailctl reports send-now --day` plans again).
CREATE TABLE report_days (
	day		date PRIMARY KEY,
	planned_at	timestamptz NOT NULL DEFAULT now()
);

-- Addresses (mailto: targets) or URIs no report is sent to until `until`.
CREATE TABLE report_suppressions (
	address		text PRIMARY KEY,	-- lower case
	until		timestamptz NOT NULL,
	added_at	timestamptz NOT NULL DEFAULT now()
);
