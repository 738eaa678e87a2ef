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

-- Blobs that may have no reference (see src/store/blobs.rs): marked by the
-- deletion that orphaned them and by a writer about to store them; a collector
-- removes a blob only when its mark is older than the grace period and no row
-- references it.
CREATE TABLE blob_marks (
    sha256    TEXT PRIMARY KEY,
    -- Unix milliseconds.
    marked_at BIGINT NOT NULL
);

CREATE INDEX blob_marks_marked_at ON blob_marks (marked_at);
