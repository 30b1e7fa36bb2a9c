-- OAuth 2.1 for MCP clients: users, agents, registered clients, pending authorizations,
-- authorization codes and refresh tokens. Every secret is stored as its SHA-256 only.

-- Local users (the embedded default and development); an identity provider replaces them.
CREATE TABLE users (
    tenant       TEXT NOT NULL REFERENCES tenants(name),
    name         TEXT NOT NULL,
    groups_csv   TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant, name)
);

-- Agents: applications registered for a tenant, each with a role. The key is shown once.
-- An agent may also be bound to an OAuth client id, for clients that can only do OAuth.
CREATE TABLE agents (
    tenant           TEXT NOT NULL REFERENCES tenants(name),
    name             TEXT NOT NULL,
    role             TEXT NOT NULL,
    key_hash         TEXT NOT NULL UNIQUE,
    oauth_client_id  TEXT,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (tenant, name)
);

CREATE TABLE oauth_clients (
    client_id      TEXT PRIMARY KEY,
    client_name    TEXT,
    redirect_uris  TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);

-- An authorization request waiting for the user to sign in.
CREATE TABLE oauth_pending (
    id              TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL,
    redirect_uri    TEXT NOT NULL,
    code_challenge  TEXT NOT NULL,
    state           TEXT,
    resource        TEXT NOT NULL,
    tenant          TEXT NOT NULL,
    expires_at      BIGINT NOT NULL
);

CREATE TABLE oauth_codes (
    code_hash       TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL,
    redirect_uri    TEXT NOT NULL,
    code_challenge  TEXT NOT NULL,
    resource        TEXT NOT NULL,
    tenant          TEXT NOT NULL,
    user_name       TEXT NOT NULL,
    expires_at      BIGINT NOT NULL,
    used_at         BIGINT
);

-- Refresh tokens rotate: each use spends the token and issues the next of its family; a
-- spent token presented again revokes the whole family (it was stolen or replayed).
CREATE TABLE oauth_refresh (
    token_hash  TEXT PRIMARY KEY,
    family      TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    resource    TEXT NOT NULL,
    tenant      TEXT NOT NULL,
    user_name   TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    revoked     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX oauth_refresh_family ON oauth_refresh(family);
