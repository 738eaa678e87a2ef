-- Progress within the running epoch of a training job (StepProgress as JSON),
-- written by its training process at most twice a second under the lease, and
-- cleared when an attempt claims the job.
ALTER TABLE training_jobs ADD COLUMN progress TEXT;
