-- Every attempt event and sign-in/out, kept after accounts are removed.
CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    event      TEXT    NOT NULL,
    login_id   TEXT,
    account_id INTEGER,
    ip         TEXT    NOT NULL,
    user_agent TEXT    NOT NULL
);

CREATE INDEX audit_by_account ON audit_events (account_id, at);
