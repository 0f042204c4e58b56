-- The OpenID Connect provider's records (clients, signing keys, consents,
-- grants, codes, tokens, device authorizations): small JSON documents
-- with a lifetime, each changed by compare-and-set on its version.
CREATE TABLE provider_records (
    kind       TEXT   NOT NULL,
    key        TEXT   NOT NULL,
    value      TEXT   NOT NULL,
    version    BIGINT NOT NULL,
    -- unix ms; a record past it is gone for every read
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (kind, key)
);

CREATE INDEX provider_records_by_expiry ON provider_records (expires_at);
