-- Tenants, join tokens and connectors. Portable SQL (SQLite and PostgreSQL): TEXT keys,
-- BIGINT Unix-millisecond timestamps, no engine-specific types.
CREATE TABLE tenants (
    name        TEXT PRIMARY KEY,
    created_at  BIGINT NOT NULL
);

-- One-time join tokens, stored as SHA-256 hashes only. The connector id is fixed when the
-- token is made, so the identity a CSR may ask for is known before any CSR arrives.
CREATE TABLE join_tokens (
    token_hash    TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL REFERENCES tenants(name),
    connector_id  TEXT NOT NULL UNIQUE,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    used_at       BIGINT
);

CREATE TABLE connectors (
    id              TEXT PRIMARY KEY,
    tenant          TEXT NOT NULL REFERENCES tenants(name),
    enrolled_at     BIGINT NOT NULL,
    cert_serial     TEXT NOT NULL,
    cert_not_after  BIGINT NOT NULL,
    revoked_at      BIGINT,
    version         TEXT,
    transport       TEXT,
    online          BIGINT NOT NULL DEFAULT 0,
    session_id      TEXT,
    last_seen       BIGINT
);

CREATE INDEX connectors_by_tenant ON connectors(tenant);
