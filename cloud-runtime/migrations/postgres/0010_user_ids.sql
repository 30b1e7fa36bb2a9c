-- Users are known by a stable id that is never reused (`u-` and 32 hex digits: random for a
-- local user, a digest of issuer and subject for a user of an identity provider); names are
-- for display. Everything that follows one person (codes, refresh tokens, browser sessions,
-- connect requests, and on the connector the vault entries of their upstream tokens) names
-- them by that id. The runtime assigns ids to existing users when it opens the store.
ALTER TABLE users ADD COLUMN id TEXT;
CREATE UNIQUE INDEX users_by_id ON users(id);

-- What was issued before named its user by a name that can pass to someone else; it ends
-- here, and users sign in (and connect their upstream accounts) again.
DELETE FROM oauth_codes;
UPDATE oauth_refresh SET revoked = 1;
DELETE FROM browser_sessions;
DELETE FROM connect_requests;
DELETE FROM oauth_pending;
ALTER TABLE oauth_codes RENAME COLUMN user_name TO user_id;
ALTER TABLE oauth_refresh RENAME COLUMN user_name TO user_id;
ALTER TABLE browser_sessions RENAME COLUMN user_name TO user_id;
ALTER TABLE connect_requests RENAME COLUMN user_name TO user_id;
ALTER TABLE oauth_pending RENAME COLUMN signed_in_user TO signed_in_user_id;

-- A per-tenant secret keying the digests of call arguments in audit records (HMAC-SHA256),
-- so that short values (repository names, numbers) cannot be recovered from an export by
-- hashing guesses. Made on first use.
ALTER TABLE tenants ADD COLUMN audit_key TEXT;

-- How often (seconds) the groups and the status of an identity provider's user are asked
-- of the provider again, at a refresh of the user's token: removing someone from a group,
-- or disabling them, at the provider takes effect here within this time.
ALTER TABLE idps ADD COLUMN recheck_secs BIGINT NOT NULL DEFAULT 3600;

-- The provider's side of a user's latest sign-in: the refresh token the provider gave the
-- runtime (if it gave one), with which it asks again, and when it last did.
CREATE TABLE idp_sessions (
    tenant         TEXT NOT NULL REFERENCES tenants(name),
    user_id        TEXT NOT NULL,
    refresh_token  TEXT,
    checked_at     BIGINT NOT NULL,
    PRIMARY KEY (tenant, user_id)
);
