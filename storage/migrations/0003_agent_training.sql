-- Agent configurations carry their environment (episode length, position sizes, exposure, slippage):
-- the world an agent is trained in is part of what it is. Agent versions remember where their RLlib
-- checkpoint lives, so an interrupted training resumes from it.
ALTER TABLE agent_configurations ADD COLUMN environment jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE agent_versions ADD COLUMN checkpoint_path text;
ALTER TABLE agent_versions ADD COLUMN iterations_done integer NOT NULL DEFAULT 0 CHECK (iterations_done >= 0);
CREATE UNIQUE INDEX agent_versions_one_training
    ON agent_versions (agent_configuration_id, dataset_version_id) WHERE status = 'training';

-- Dataset documents written before this migration were JSON-encoded twice (a jsonb string holding the
-- JSON text); unwrap them into the objects they always meant to be.
UPDATE feature_set_versions SET parameters = (parameters #>> '{}')::jsonb WHERE jsonb_typeof(parameters) = 'string';
UPDATE dataset_versions SET normalization = (normalization #>> '{}')::jsonb WHERE jsonb_typeof(normalization) = 'string';
UPDATE dataset_lineage SET details = (details #>> '{}')::jsonb WHERE jsonb_typeof(details) = 'string';
