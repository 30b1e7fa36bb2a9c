-- A pending sign-in is bound to the browser that started it (the hash of its sign-in
-- binding cookie), so nobody can finish a sign-in they started in someone else's browser.
ALTER TABLE oauth_pending ADD COLUMN browser_hash TEXT;
-- The user the identity provider signed in, while they are asked to consent.
ALTER TABLE oauth_pending ADD COLUMN signed_in_user TEXT;
-- The identity provider's account (issuer and subject) a user name belongs to: a later
-- sign-in that claims the same name for another account is refused.
ALTER TABLE users ADD COLUMN idp_subject TEXT;
