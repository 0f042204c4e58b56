-- Account ids are never given out again, and every account has a stable,
-- opaque subject (OpenID Connect's `sub`).
--
-- `INTEGER PRIMARY KEY` alone reuses the highest id once its row is gone:
-- a new account then inherited what was keyed by the removed one's id
-- (passkeys, consents, grants, sign-in history). AUTOINCREMENT never does.
-- SQLite cannot add it to a table, so `accounts` is rebuilt, and `sessions`
-- with it: dropping the old `accounts` while `sessions` pointed at it would
-- cascade into the sessions (foreign keys are on, and cannot be turned off
-- inside the migration's transaction).

CREATE TABLE accounts_new (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    -- UUID v4 for new accounts; the id as text for older ones, so that the
    -- `sub` their relying parties know stays the same
    subject       TEXT    NOT NULL UNIQUE,
    username      TEXT    NOT NULL UNIQUE,
    display_name  TEXT    NOT NULL,
    -- argon2id PHC string; never the password itself
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    home_seen_at  INTEGER NOT NULL DEFAULT 0
);

INSERT INTO accounts_new (id, subject, username, display_name, password_hash, created_at,
                          home_seen_at)
SELECT id, CAST(id AS TEXT), username, display_name, password_hash, created_at, home_seen_at
FROM accounts;

CREATE TABLE sessions_new (
    id           TEXT    PRIMARY KEY,
    token_hash   BLOB    NOT NULL UNIQUE,
    account_id   INTEGER NOT NULL REFERENCES accounts_new(id) ON DELETE CASCADE,
    method       TEXT    NOT NULL,
    user_agent   TEXT    NOT NULL,
    ip           TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
);

INSERT INTO sessions_new SELECT id, token_hash, account_id, method, user_agent, ip, created_at,
                                last_seen_at
FROM sessions;

DROP TABLE sessions;
DROP TABLE accounts;
-- Renaming rewrites sessions_new's reference to the new name as well.
ALTER TABLE accounts_new RENAME TO accounts;
ALTER TABLE sessions_new RENAME TO sessions;
CREATE INDEX sessions_by_account ON sessions (account_id);

-- Ids removed before this migration may still name records and audit rows
-- (and the highest of them would have been given out again): the sequence
-- starts above every id ever seen.
DELETE FROM sqlite_sequence WHERE name IN ('accounts', 'accounts_new');
INSERT INTO sqlite_sequence (name, seq)
SELECT 'accounts', max(
    (SELECT coalesce(max(id), 0) FROM accounts),
    (SELECT coalesce(max(account_id), 0) FROM audit_events),
    (SELECT coalesce(max(CAST(key AS INTEGER)), 0) FROM provider_records
     WHERE kind IN ('account_settings', 'passkey_user')),
    (SELECT coalesce(max(CAST(substr(key, 1, instr(key, ':') - 1) AS INTEGER)), 0)
     FROM provider_records WHERE kind IN ('consent', 'grant') AND instr(key, ':') > 0),
    (SELECT coalesce(max(CAST(json_extract(value, '$.account_id') AS INTEGER)), 0)
     FROM provider_records WHERE kind = 'passkey' AND json_valid(value))
);
