-- Tenant policies: every applied file is kept as a numbered revision; the highest is in
-- force. Runtimes poll the current revision numbers to pick up `policy apply` without a
-- restart.
CREATE TABLE policy_revisions (
    tenant      TEXT NOT NULL REFERENCES tenants(name),
    revision    BIGINT NOT NULL,
    source      TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    file_name   TEXT NOT NULL,
    applied_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant, revision)
);

-- What each connector reported at its last hello: its local policy (JSON array of rules),
-- so `policy check` can explain the connector layer offline.
ALTER TABLE connectors ADD COLUMN local_policy TEXT;
