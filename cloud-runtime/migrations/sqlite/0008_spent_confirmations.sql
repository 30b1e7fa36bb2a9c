-- Stateless confirmations already answered (2026-07-28): each sealed request state confirms
-- one call, once; its id stays here until the state would have expired anyway.
CREATE TABLE spent_confirmations (
    id          TEXT PRIMARY KEY,
    expires_at  BIGINT NOT NULL
);
