-- When the newest configuration snapshot was made: `mailctl hosts` flags a
-- host whose reported config version is behind only once the change is
-- older than a heartbeat window (right after a change every host is briefly
-- behind until its next heartbeat).
ALTER TABLE config_state ADD COLUMN changed_at timestamptz NOT NULL DEFAULT now();

CREATE FUNCTION config_state_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.version IS DISTINCT FROM OLD.version THEN
		NEW.changed_at := now();
	END IF;
	RETURN NEW;
END
$$;

CREATE TRIGGER config_state_touch BEFORE UPDATE ON config_state
	FOR EACH ROW EXECUTE FUNCTION config_state_touch();
