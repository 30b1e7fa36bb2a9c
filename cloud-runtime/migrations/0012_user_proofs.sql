-- The ID token the tenant's identity provider signed at a user's most recent sign-in (or
-- re-check): forwarded with each of their calls, so that a connector can verify who the user
-- is against the provider's keys instead of taking the runtime's word (issue 17).
ALTER TABLE idp_sessions ADD COLUMN id_token TEXT;
