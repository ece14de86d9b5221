-- An agent configuration's hyperparameter search (`[search]`: trials, seeds, inner folds and the space of
-- hyperparameter, environment and reward values `tradingd train --tune` chooses among on inner
-- walk-forward folds of the training rows). Empty for configurations written before it: no search.
ALTER TABLE agent_configurations ADD COLUMN search jsonb NOT NULL DEFAULT '{}'::jsonb;
