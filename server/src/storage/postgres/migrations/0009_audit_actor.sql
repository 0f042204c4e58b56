-- Who acted, when it was not the account itself (an administrator, an
-- admin API token, the operator's shell); NULL for the account's own acts.
ALTER TABLE audit_events ADD COLUMN actor TEXT;
-- The admin console's and API's audit filters: by account, app and
-- address, newest first.
CREATE INDEX audit_by_account_id ON audit_events (account_id, id);
CREATE INDEX audit_by_client ON audit_events (client_id, id);
CREATE INDEX audit_by_ip ON audit_events (ip, id);
