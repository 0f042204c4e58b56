-- Running qrlogin for a team: an account may be an administrator, and may
-- be disabled (kept, with its id, subject and passkeys, but unable to sign
-- in, approve, or have tokens issued until it is enabled again). Booleans
-- as SQLite keeps them: 0 or 1, and nothing else.
ALTER TABLE accounts ADD COLUMN admin INTEGER NOT NULL DEFAULT 0 CHECK (admin IN (0, 1));
ALTER TABLE accounts ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1));
