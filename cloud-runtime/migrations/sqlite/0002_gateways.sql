-- Gateways: named tool collections of a tenant, each served at /t/<tenant>/g/<name>/mcp.
-- `tools` is a comma-separated list of tool-name patterns (`*` matches any suffix).
CREATE TABLE gateways (
    tenant        TEXT NOT NULL REFERENCES tenants(name),
    name          TEXT NOT NULL,
    instructions  TEXT,
    tools         TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (tenant, name)
);
