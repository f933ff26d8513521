-- 006: certificates of the fleet CA taken back (mailctl pki revoke). Every
-- controld replica reloads the serials every few seconds (tls.revocation_interval)
-- and refuses them at the TLS handshake; connections already open with one are
-- closed at that reload. A table rather than a CRL file: every replica shares
-- the database already, so a revocation reaches all of them without copying a
-- file to each host. Serials are upper-case hex, two digits per octet (what
-- OpenSSL's BN_bn2hex and `openssl x509 -serial` print), at most 20 octets
-- (RFC 5280 4.1.2.2).

CREATE TABLE revoked_certificates (
	serial		text PRIMARY KEY CHECK (serial ~ '^[0-9A-F]{1,40}$'),
	name		text NOT NULL DEFAULT '',	-- the certificate's CN, for people
	not_after	timestamptz,			-- past it, the CA check refuses it anyway
	revoked_at	timestamptz NOT NULL DEFAULT now()
);
