-- Every attempt event and sign-in/out, kept after accounts are removed.
CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    event      TEXT    NOT NULL,
    login_id   TEXT,
    account_id INTEGER,
    -- the session a sign-in started, so the phone can revoke it from history
    session_id TEXT,
    ip         TEXT    NOT NULL,
    user_agent TEXT    NOT NULL
);

CREATE INDEX audit_by_account ON audit_events (account_id, event, at);

-- When the account last looked at its phone home (/m): newer sign-ins are
-- marked "new" there.
ALTER TABLE accounts ADD COLUMN home_seen_at INTEGER NOT NULL DEFAULT 0;
