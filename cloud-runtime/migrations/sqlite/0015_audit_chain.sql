-- The audit trail in the database, for replicas on PostgreSQL: one hash chain per replica
-- (`serve --replica-id`), each row one record exactly as the chain hashed it. Two
-- processes that share a replica id take turns on its chain: a record goes in only as the
-- next sequence number.
CREATE TABLE audit_chain (
    replica TEXT NOT NULL,
    seq INTEGER NOT NULL,
    line BLOB NOT NULL,
    PRIMARY KEY (replica, seq)
);

-- Where each chain stood after its writer's last batch (written in the same transaction):
-- records cut from the end leave every remaining hash intact, and only this tells.
CREATE TABLE audit_heads (
    replica TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL
);
