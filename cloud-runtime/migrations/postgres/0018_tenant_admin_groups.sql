-- Who administers a tenant in its web console: its users in this group (from the identity
-- provider's groups claim, or given to a local user with `user add --admin`). A tenant
-- without a row uses the group `tenant-admins`.
CREATE TABLE tenant_admin_groups (
    tenant TEXT PRIMARY KEY REFERENCES tenants(name),
    admin_group TEXT NOT NULL
);
