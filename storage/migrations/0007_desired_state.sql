-- The operator's desired trading state, kept by the supervisor (not inside an actor): per pair of a run,
-- and for the run's whole account (`scope` '*'). A pause sent while a pair is starting, restarting or
-- FAULTED lands here first and is applied when the pair is back; it survives a restart of the daemon,
-- and it wins over a risk guard's older checkpoint.
CREATE TABLE operator_desired_states (
    run_id         uuid        NOT NULL REFERENCES agent_runs (id),
    scope          text        NOT NULL CHECK (scope <> ''),
    trading_state  text        NOT NULL CHECK (trading_state IN ('ACTIVE', 'REDUCING', 'HALTED')),
    reason         text,
    updated_by     text        NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, scope),
    CHECK ((trading_state = 'ACTIVE') = (reason IS NULL))
);
