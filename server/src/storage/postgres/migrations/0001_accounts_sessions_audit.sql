-- The PostgreSQL schema: the same tables as SQLite's migrations, in one step.
CREATE TABLE accounts (
    id            BIGSERIAL PRIMARY KEY,
    username      TEXT   NOT NULL UNIQUE,
    display_name  TEXT   NOT NULL,
    -- argon2id PHC string; never the password itself
    password_hash TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    -- when the account last looked at its phone home (/m)
    home_seen_at  BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE sessions (
    -- public id, shown in session lists and used to revoke
    id           TEXT   PRIMARY KEY,
    -- SHA-256 of the bearer token; the token itself is never stored
    token_hash   BYTEA  NOT NULL UNIQUE,
    account_id   BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    method       TEXT   NOT NULL,
    user_agent   TEXT   NOT NULL,
    ip           TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);

CREATE INDEX sessions_by_account ON sessions (account_id);

-- Every attempt event and sign-in/out, kept after accounts are removed.
CREATE TABLE audit_events (
    id         BIGSERIAL PRIMARY KEY,
    at         BIGINT NOT NULL,
    event      TEXT   NOT NULL,
    login_id   TEXT,
    account_id BIGINT,
    session_id TEXT,
    ip         TEXT   NOT NULL,
    user_agent TEXT   NOT NULL
);

-- Only sign-ins are looked up by account (the phone's "recent sign-ins").
CREATE INDEX sign_ins_by_account ON audit_events (account_id, at) WHERE event = 'signed_in';
