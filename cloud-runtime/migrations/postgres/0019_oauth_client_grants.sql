-- The OAuth clients each tenant's users have let act for them: when one first and last got
-- tokens in the tenant, and whether a tenant administrator revoked it there (then its
-- refresh tokens are spent and it gets no token in the tenant again).
CREATE TABLE oauth_client_grants (
    tenant TEXT NOT NULL REFERENCES tenants(name),
    client_id TEXT NOT NULL,
    first_used_at BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    revoked_at BIGINT,
    PRIMARY KEY (tenant, client_id)
);
