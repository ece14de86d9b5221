-- Evaluation and promotion: the baselines an evaluation was compared with, and the history of which
-- agent version was promoted (or rolled back to) for a pair and interval.

-- Each baseline's aggregate metrics on the same folds as the evaluated policy (its per-fold figures
-- are in `folds`), and the evaluated policy's own decision threshold and trading world in `parameters`.
ALTER TABLE evaluation_reports ADD COLUMN baselines jsonb NOT NULL DEFAULT '{}'::jsonb;
CREATE INDEX evaluation_reports_dataset ON evaluation_reports (dataset_version_id, kind, created_at DESC);

-- Every promotion and rollback, with the gates it passed and the evaluation they were read from. The
-- champion of a pair and interval is the version in status `promoted` whose dataset is of that pair and
-- interval; a rollback returns to the version the champion's promotion replaced.
CREATE TABLE agent_promotions (
    id                    uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    pair                  text        NOT NULL,
    interval              text        NOT NULL,
    action                text        NOT NULL CHECK (action IN ('promote', 'rollback')),
    agent_version_id      uuid        NOT NULL REFERENCES agent_versions (id),
    previous_version_id   uuid        REFERENCES agent_versions (id),
    evaluation_report_id  uuid        REFERENCES evaluation_reports (id),
    gates                 jsonb       NOT NULL DEFAULT '[]'::jsonb,
    operator              text,
    created_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agent_promotions_scope ON agent_promotions (pair, interval, created_at DESC);
