-- 011: what a host reports of the certificate for its next key
-- (HostIdentity.next_cert_ready, next_cert_path; docs/dns.md, "Rollover"):
-- the rollover's switch step waits until the host has one.

ALTER TABLE host_identity
	ADD COLUMN next_cert_ready boolean NOT NULL DEFAULT false,
	ADD COLUMN next_cert_path text NOT NULL DEFAULT '';
