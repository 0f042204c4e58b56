-- Every account has a stable, opaque subject (OpenID Connect's `sub`): a
-- UUID v4 for new accounts; the id as text for older ones, so that the
-- `sub` their relying parties know stays the same. (Ids are BIGSERIAL: a
-- sequence never gives a value out twice, so removed ids are never reused.)
ALTER TABLE accounts ADD COLUMN subject TEXT;
UPDATE accounts SET subject = id::text;
ALTER TABLE accounts ALTER COLUMN subject SET NOT NULL;
ALTER TABLE accounts ADD CONSTRAINT accounts_subject_key UNIQUE (subject);
