-- Training jobs: a queue with leases. A worker claims a queued job by taking a
-- fresh lease token; every later write of that worker (heartbeat, epoch metrics,
-- the finished model) is guarded by the token, so a worker that lost its lease
-- cannot write anything. Times are Unix milliseconds; flags are BIGINT 0/1.
CREATE TABLE training_jobs (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    -- Not a foreign key: a finished job outlives its dataset. Deleting a dataset
    -- that a queued or running job needs is refused by the API instead.
    dataset_id       TEXT NOT NULL,
    preset           TEXT NOT NULL,
    -- The resolved hyperparameters (preset defaults plus overrides), as JSON.
    hyperparameters  TEXT NOT NULL,
    -- Idempotency-Key and the hash of the request it came with.
    idempotency_key  TEXT UNIQUE,
    request_sha256   TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    -- Claims so far; a crash-requeue keeps the count, so retries are capped.
    attempt          BIGINT NOT NULL,
    max_attempts     BIGINT NOT NULL,
    -- A requeued job waits until then (exponential backoff).
    run_after        BIGINT NOT NULL,
    lease_token      TEXT,
    worker           TEXT,
    device           TEXT,
    heartbeat_at     BIGINT,
    cancel_requested BIGINT NOT NULL CHECK (cancel_requested IN (0, 1)),
    error            TEXT,
    model_id         TEXT,
    created_at       BIGINT NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT,
    updated_at       BIGINT NOT NULL
);

CREATE INDEX training_jobs_queue ON training_jobs (state, run_after, created_at);

-- One row per finished epoch. A resumed attempt that redoes an epoch replaces it.
CREATE TABLE training_job_epochs (
    job_id  TEXT NOT NULL REFERENCES training_jobs (id) ON DELETE CASCADE,
    epoch   BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    -- EpochMetrics as JSON.
    metrics TEXT NOT NULL,
    PRIMARY KEY (job_id, epoch)
);

-- Trained models. The artifact lives in <data dir>/models/<id>; bundled models
-- (the models directory) are not rows. A job registers at most one model.
CREATE TABLE models (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    preset     TEXT NOT NULL,
    job_id     TEXT UNIQUE,
    dataset_id TEXT,
    -- Headline figures (best epoch, validation loss, ...) as JSON.
    summary    TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
