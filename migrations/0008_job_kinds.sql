-- One queue for every kind of job: training a model, and evaluating one (pieces
-- it generates against its held-out files). The training-job table becomes
-- `jobs` with a `kind`; what only one kind has is a column of its own that the
-- other leaves NULL, held to that by CHECKs. Leases, heartbeats, attempts,
-- backoff and cancellation are the same for every kind.
--
-- Rebuilt rather than altered: SQLite cannot drop a NOT NULL. The epochs move
-- first and their table goes before the old jobs table, so no cascade runs.
CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('training', 'evaluation')),
    name             TEXT NOT NULL,
    -- Training: the dataset (not a foreign key: a finished job outlives its
    -- dataset; deleting one a queued or running job needs is refused instead).
    dataset_id       TEXT,
    -- Training: the preset.
    preset           TEXT,
    -- The job's resolved parameters as JSON: a training job's hyperparameters
    -- (preset defaults plus overrides, then what its recipe chose for the
    -- corpus), an evaluation's pieces, notes and seed.
    parameters       TEXT NOT NULL,
    -- Evaluation: the model evaluated (bundled or trained; not a foreign key).
    evaluated_model_id TEXT,
    -- Training: the request's hyperparameter overrides as JSON (NULL for jobs
    -- submitted before recipes).
    overrides        TEXT,
    idempotency_key  TEXT UNIQUE,
    request_sha256   TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    attempt          BIGINT NOT NULL,
    max_attempts     BIGINT NOT NULL,
    run_after        BIGINT NOT NULL,
    lease_token      TEXT,
    worker           TEXT,
    device           TEXT,
    heartbeat_at     BIGINT,
    cancel_requested BIGINT NOT NULL CHECK (cancel_requested IN (0, 1)),
    -- Training: progress within the running epoch (StepProgress as JSON), cleared
    -- when an attempt claims the job.
    progress         TEXT,
    -- Evaluation: pieces generated so far in the current attempt.
    pieces_done      BIGINT NOT NULL,
    error            TEXT,
    -- Training: the model it registered.
    model_id         TEXT,
    created_at       BIGINT NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT,
    updated_at       BIGINT NOT NULL,
    CHECK ((kind = 'training') = (dataset_id IS NOT NULL AND preset IS NOT NULL)),
    CHECK ((kind = 'evaluation') = (evaluated_model_id IS NOT NULL)),
    CHECK (kind = 'training' OR (overrides IS NULL AND progress IS NULL))
);

INSERT INTO jobs (id, kind, name, dataset_id, preset, parameters, evaluated_model_id, overrides,
    idempotency_key, request_sha256, state, attempt, max_attempts, run_after, lease_token, worker, device,
    heartbeat_at, cancel_requested, progress, pieces_done, error, model_id, created_at, started_at, finished_at,
    updated_at)
SELECT id, 'training', name, dataset_id, preset, hyperparameters, NULL, overrides,
    idempotency_key, request_sha256, state, attempt, max_attempts, run_after, lease_token, worker, device,
    heartbeat_at, cancel_requested, progress, 0, error, model_id, created_at, started_at, finished_at,
    updated_at
FROM training_jobs;

CREATE INDEX jobs_queue ON jobs (kind, state, run_after, created_at);

-- One row per finished epoch of a training job. A resumed attempt that redoes an
-- epoch replaces it.
CREATE TABLE job_epochs (
    job_id  TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    epoch   BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    -- EpochMetrics as JSON.
    metrics TEXT NOT NULL,
    PRIMARY KEY (job_id, epoch)
);

INSERT INTO job_epochs (job_id, epoch, attempt, metrics)
SELECT job_id, epoch, attempt, metrics FROM training_job_epochs;

DROP TABLE training_job_epochs;
DROP TABLE training_jobs;

-- What evaluation jobs found, kept with the model they evaluated (bundled models
-- are read-only, and a trained model's files are fixed by their manifest). The
-- newest is the model's evaluation; a deleted model's go with it. Written in the
-- same transaction as its job's success, under the job's lease.
CREATE TABLE model_evaluations (
    job_id     TEXT PRIMARY KEY,
    model_id   TEXT NOT NULL,
    -- MusicEvaluation as JSON.
    evaluation TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX model_evaluations_model ON model_evaluations (model_id, created_at);
