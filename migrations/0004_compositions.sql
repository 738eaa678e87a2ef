-- Compositions: every piece generated, with the request that made it. The MIDI
-- file is a content-addressed blob under the data dir (blobs/sha256/..).
CREATE TABLE compositions (
    id          TEXT PRIMARY KEY,
    model_id    TEXT NOT NULL,
    -- The seed used, as decimal text: seeds span all of u64, beyond BIGINT.
    seed        TEXT NOT NULL,
    -- The request as JSON, the notes as JSON, the statistics as JSON.
    request     TEXT NOT NULL,
    notes       TEXT NOT NULL,
    stats       TEXT NOT NULL,
    midi_sha256 TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE INDEX compositions_created ON compositions (created_at);
