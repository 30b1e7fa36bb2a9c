-- The audit trail's search index, for the admin API and console: one row per record of
-- every chain (the data directory's file is chain 'local'; replicas' chains by replica id),
-- with the fields a search filters on and the record's line exactly as it was chained.
-- Derived: the chains stay the record of truth, a runtime fills this from them and refills
-- it after a move to another store, so `migrate-store` does not copy it.
CREATE TABLE audit_index (
    chain TEXT NOT NULL,
    seq BIGINT NOT NULL,
    tenant TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    kind TEXT NOT NULL,
    user_name TEXT NOT NULL,
    agent TEXT NOT NULL,
    tool TEXT NOT NULL,
    connector TEXT,
    decision TEXT,
    layer TEXT,
    outcome TEXT,
    trace_id TEXT NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (chain, seq)
);
-- Newest first, a page after a (time, chain, seq) cursor: each index ends in the order
-- pages are read in, so a filtered page reads only the rows it returns and those it skips.
CREATE INDEX audit_index_by_time ON audit_index (tenant, at_ms, chain, seq);
CREATE INDEX audit_index_by_user ON audit_index (tenant, user_name, at_ms, chain, seq);
CREATE INDEX audit_index_by_agent ON audit_index (tenant, agent, at_ms, chain, seq);
CREATE INDEX audit_index_by_tool ON audit_index (tenant, tool, at_ms, chain, seq);
CREATE INDEX audit_index_by_decision ON audit_index (tenant, decision, at_ms, chain, seq);
