-- The runtime's own secret keys (the CA's, access-token signing, request-state sealing,
-- QUIC reset, SSH host), shared by every replica, each sealed with AES-256-GCM under the
-- operator's key-encryption key (never stored here): a copy of the database alone opens
-- none of them.
CREATE TABLE sealed_keys (
    name TEXT PRIMARY KEY,
    sealed BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
