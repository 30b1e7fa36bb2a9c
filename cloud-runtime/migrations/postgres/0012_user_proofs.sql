-- The ID token the tenant's identity provider signed at a user's most recent sign-in (or
-- re-check): forwarded with each of their calls, so that a connector can verify who the user
-- is against the provider's keys instead of taking the runtime's word (issue 17).
ALTER TABLE idp_sessions ADD COLUMN id_token TEXT;

-- A connector's request that the user approve one call by signing in again at the identity
-- provider with the connector's nonce; the ID token that comes back is the approval, sent
-- with the user's next identical call and then spent.
CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    user_id TEXT NOT NULL,
    tool TEXT NOT NULL,
    arguments_json TEXT NOT NULL,
    nonce TEXT NOT NULL,
    summary TEXT NOT NULL,
    pending_id TEXT,
    id_token TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX approvals_by_call ON approvals(tenant, user_id, tool);
CREATE INDEX approvals_by_pending ON approvals(pending_id);

-- The audit keys connectors announced at hello (`ed25519:<base64>`): every key a connector
-- ever used, so that the receipts it signed with an older one still verify.
CREATE TABLE connector_audit_keys (
    connector TEXT NOT NULL,
    audit_key TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    PRIMARY KEY (connector, audit_key)
);
