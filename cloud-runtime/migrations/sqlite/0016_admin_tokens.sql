-- Tokens of the tenant admin API for automation: each acts on one tenant with the scopes
-- it was made with, until it expires or is revoked. Only the secret's hash is kept; the
-- token is shown once, at creation.
CREATE TABLE admin_tokens (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER,
    last_used INTEGER
);
CREATE INDEX admin_tokens_by_tenant ON admin_tokens (tenant);
