-- Datasets: immutable sets of MIDI files uploaded by users. The files themselves
-- live content-addressed under the data dir (blobs/sha256/..); rows point at them.
CREATE TABLE datasets (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    -- 0 or 1: sqlx's Any driver cannot read SQLite booleans, so none are used.
    include_drums BIGINT NOT NULL CHECK (include_drums IN (0, 1)),
    file_count    BIGINT NOT NULL,
    note_count    BIGINT NOT NULL,
    -- The ingest report as JSON: accepted and rejected files, totals.
    report        TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE dataset_files (
    dataset_id TEXT NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    position   BIGINT NOT NULL,
    file_name  TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    bytes      BIGINT NOT NULL,
    PRIMARY KEY (dataset_id, position)
);

-- Deleting a dataset asks whether its blobs are still used elsewhere.
CREATE INDEX dataset_files_sha256 ON dataset_files (sha256);
