-- 014: TLS reports other domains sent to our TLSRPT addresses (RFC 8460,
-- docs/reports.md, "Receiving"). An mxd takes each mail to one of
-- ConfigSnapshot.tlsrpt_addresses and hands it to controld
-- (Collector.SubmitReport); controld reads it (tlsrpt_mime, tlsrpt_parse) on
-- its database workers and stores one row here, accepted or refused.
--
-- (host_id, mail_id) is the mxd's own id of the mail: a resend (the ack was
-- lost) finds the row and is acknowledged as a duplicate, never stored twice.
-- refused is NULL for a report that was read; otherwise the reason, and the
-- row keeps the mail (at most 1 MiB of it) aside for a look by hand.

CREATE TABLE received_reports (
	id			bigserial PRIMARY KEY,
	host_id			text NOT NULL,
	mail_id			text NOT NULL,
	received_at		timestamptz NOT NULL,	-- when the mxd took the mail
	stored_at		timestamptz NOT NULL DEFAULT now(),
	mail_from		text NOT NULL,		-- envelope sender ('' for <>)
	recipient		text NOT NULL,		-- the TLSRPT address
	header_from		text,			-- remote text, as tlsrpt_mime read it
	message_id		text,
	subject			text,
	report_domain		text,			-- TLS-Report-Domain
	report_submitter	text,			-- TLS-Report-Submitter
	refused			text,			-- NULL: read; else why not
	-- The report, as read (NULL when refused).
	organization_name	text,
	report_id		text,
	contact_info		text,
	begin_ts		timestamptz,
	end_ts			timestamptz,
	policy_domains		text[] NOT NULL DEFAULT '{}',	-- lower case
	total_success		bigint NOT NULL DEFAULT 0,
	total_failure		bigint NOT NULL DEFAULT 0,
	policies		jsonb,			-- policies, failure details
	content_type		text,			-- of the report part
	raw			bytea NOT NULL,		-- the report part (gzip or JSON); refused: the mail, cut at 1 MiB
	raw_cut			boolean NOT NULL DEFAULT false,
	UNIQUE (host_id, mail_id)
);

CREATE INDEX received_reports_received ON received_reports (received_at);
CREATE INDEX received_reports_domains ON received_reports USING gin (policy_domains);
