-- The request's hyperparameter overrides (HyperparameterOverrides as JSON): the
-- training process fits the preset's recipe to the corpus around them and writes
-- the result, with the reason for each choice, to hyperparameters. NULL for jobs
-- submitted before recipes, which train their hyperparameters as they are.
ALTER TABLE training_jobs ADD COLUMN overrides TEXT;
