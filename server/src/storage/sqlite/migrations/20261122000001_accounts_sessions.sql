-- Accounts that can approve sign-ins, and the sessions signed in to them.
CREATE TABLE accounts (
    id            INTEGER PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    display_name  TEXT    NOT NULL,
    -- argon2id PHC string; never the password itself
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE sessions (
    -- public id, shown in session lists and used to revoke
    id           TEXT    PRIMARY KEY,
    -- SHA-256 of the bearer token; the token itself is never stored
    token_hash   BLOB    NOT NULL UNIQUE,
    account_id   INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    -- 'password' (signed in with a password) or 'qr' (signed in by scanning)
    method       TEXT    NOT NULL,
    user_agent   TEXT    NOT NULL,
    ip           TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
);

CREATE INDEX sessions_by_account ON sessions (account_id);
