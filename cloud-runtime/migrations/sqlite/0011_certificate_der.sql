-- The certificates themselves, beside their serials (issue 16): the SSH-over-TCP tunnel has
-- no TLS handshake to present one, so the runtime checks the key that signed the SSH
-- authentication against the certificate it issued. Portable SQL: one ADD COLUMN per
-- statement. Connectors enrolled before this migration get theirs at their next renewal.
ALTER TABLE connectors ADD COLUMN cert_der BLOB;
ALTER TABLE connectors ADD COLUMN previous_cert_der BLOB;
