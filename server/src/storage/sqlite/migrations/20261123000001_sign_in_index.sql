-- Only sign-ins are ever looked up by account (the phone's "recent
-- sign-ins"); indexing every audit row by account cost a page write per
-- event type per commit.
DROP INDEX audit_by_account;
CREATE INDEX sign_ins_by_account ON audit_events (account_id, at) WHERE event = 'signed_in';
