-- Hyperparameter searches: a training job may train several trials of its
-- preset by successive halving and register the best.
--
-- `search`: the search asked for (SearchRequest as JSON, its space filled in),
-- NULL for a job that trains one model. `search_record`: what the search has done
-- so far (SearchRecord as JSON: every trial's drawn hyperparameters, rung, best
-- loss, whether it was stopped, and the winner), written by the training process
-- under the lease.
ALTER TABLE jobs ADD COLUMN search TEXT;
ALTER TABLE jobs ADD COLUMN search_record TEXT;

-- A search's epochs are its trials': the epochs table gains the trial (0 for a
-- job that trains one model) in its key. Rebuilt rather than altered: SQLite
-- cannot change a primary key.
CREATE TABLE job_trial_epochs (
    job_id  TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    trial   BIGINT NOT NULL,
    epoch   BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    -- EpochMetrics as JSON.
    metrics TEXT NOT NULL,
    PRIMARY KEY (job_id, trial, epoch)
);

INSERT INTO job_trial_epochs (job_id, trial, epoch, attempt, metrics)
SELECT job_id, 0, epoch, attempt, metrics FROM job_epochs;

DROP TABLE job_epochs;
ALTER TABLE job_trial_epochs RENAME TO job_epochs;
