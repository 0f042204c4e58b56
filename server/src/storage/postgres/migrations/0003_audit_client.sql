-- The OpenID Connect client an audit event concerns (app sign-ins, device
-- approvals, revoked grants); NULL for qrlogin's own events.
ALTER TABLE audit_events ADD COLUMN client_id TEXT;
