-- Which certificate of each connector may still open a tunnel (security review, issue 13
-- finding 1: a copied key kept working beside the real connector). Portable SQL: one
-- ADD COLUMN per statement, TEXT and BIGINT only.
--
-- cert_serial (0001) stays the current certificate. A renewal moves it here until the new
-- certificate is first presented (cert_confirmed_at); from then on the old one is refused.
ALTER TABLE connectors ADD COLUMN previous_cert_serial TEXT;
ALTER TABLE connectors ADD COLUMN cert_confirmed_at BIGINT;

-- Handshakes refused for presenting a superseded certificate: `connector list` warns of a
-- possible key copy while this is above zero.
ALTER TABLE connectors ADD COLUMN superseded_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE connectors ADD COLUMN superseded_last_at BIGINT;
ALTER TABLE connectors ADD COLUMN superseded_last_serial TEXT;
