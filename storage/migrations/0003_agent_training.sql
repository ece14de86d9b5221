-- Agent configurations carry their environment (episode length, position sizes, exposure, slippage):
-- the world an agent is trained in is part of what it is. Agent versions remember where their RLlib
-- checkpoint lives, so an interrupted training resumes from it.
ALTER TABLE agent_configurations ADD COLUMN environment jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE agent_versions ADD COLUMN checkpoint_path text;
ALTER TABLE agent_versions ADD COLUMN iterations_done integer NOT NULL DEFAULT 0 CHECK (iterations_done >= 0);
CREATE UNIQUE INDEX agent_versions_one_training
    ON agent_versions (agent_configuration_id, dataset_version_id) WHERE status = 'training';
