-- Coordination between several nodes sharing one database and one object store.

-- Models held by live generation sessions, on any node. A node renews its holds
-- while they live; a node that dies stops, and its holds lapse at expires_at.
-- Deleting a model with a live hold is refused.
CREATE TABLE model_holds (
    id         TEXT PRIMARY KEY,
    model_id   TEXT NOT NULL,
    -- The process holding it, which renews it.
    node       TEXT NOT NULL,
    -- Unix milliseconds.
    expires_at BIGINT NOT NULL
);

CREATE INDEX model_holds_model ON model_holds (model_id, expires_at);
CREATE INDEX model_holds_node ON model_holds (node);
