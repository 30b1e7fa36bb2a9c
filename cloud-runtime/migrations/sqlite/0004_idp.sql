-- A tenant's OpenID Connect identity provider. When set, users sign in there instead of as
-- local users; their group claim becomes their grants.
CREATE TABLE idps (
    tenant         TEXT PRIMARY KEY REFERENCES tenants(name),
    issuer         TEXT NOT NULL,
    client_id      TEXT NOT NULL,
    client_secret  TEXT NOT NULL,
    groups_claim   TEXT NOT NULL,
    updated_at     BIGINT NOT NULL
);

-- The OIDC leg of a pending authorization: the nonce the ID token must carry and the PKCE
-- verifier for the identity provider.
ALTER TABLE oauth_pending ADD COLUMN nonce TEXT;
ALTER TABLE oauth_pending ADD COLUMN idp_verifier TEXT;
