-- Running qrlogin for a team: an account may be an administrator, and may
-- be disabled (kept, with its id, subject and passkeys, but unable to sign
-- in, approve, or have tokens issued until it is enabled again).
ALTER TABLE accounts ADD COLUMN admin BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE accounts ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT false;
