-- Just-in-time user authorization at an upstream (GHES, GitLab). A connector asked a user to
-- connect their account; the request waits here until their browser comes back. Only the
-- consent URL and its state are kept: the client secret and PKCE verifier stay on the
-- connector, and the code is relayed to it, never stored.
CREATE TABLE connect_requests (
    id              TEXT PRIMARY KEY,
    tenant          TEXT NOT NULL REFERENCES tenants(name),
    user_name       TEXT NOT NULL,
    agent           TEXT NOT NULL,
    connector       TEXT NOT NULL,
    provider        TEXT NOT NULL,
    display_name    TEXT NOT NULL,
    authorize_url   TEXT NOT NULL,
    state           TEXT NOT NULL UNIQUE,
    elicitation_id  TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    completed_at    BIGINT,
    outcome         TEXT
);

-- Signed-in browsers (the cookie's SHA-256), so the connect page can tell that the browser
-- holding a link belongs to the user it was made for.
CREATE TABLE browser_sessions (
    session_hash  TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    user_name     TEXT NOT NULL,
    expires_at    BIGINT NOT NULL
);

-- A sign-in started from a connect page (not by an MCP client): where to go afterwards.
ALTER TABLE oauth_pending ADD COLUMN return_to TEXT;
