"""What the schema must hold, shared by the PostgreSQL and TimescaleDB tests."""

SEED_TABLES = (
    "agent_runs",
    "agent_versions",
    "evaluation_reports",
    "model_artifacts",
    "learning_updates",
    "agent_configurations",
    "risk_limit_sets",
    "dataset_versions",
    "feature_set_versions",
    "trades",
    "trade_decisions",
    "trade_executions",
    "trade_state_events",
    "retry_queue",
    "data_source_status",
    "data_source_configs",
    "source_policies",
    "ops_audit_events",
    "account_risk_state",
    "account_risk_policies",
    "market_input_snapshots",
    "dataset_lineage",
    "observability_metrics",
)
OWN_TABLES = (
    "candles",
    "actor_checkpoints",
    "dataset_payloads",
    "alerts",
    "agent_promotions",
    "operator_desired_states",
    "funding_rates",
    "funding_payments",
)
HYPERTABLES = ("candles", "market_input_snapshots", "observability_metrics", "trade_decisions")
RETENTION = {"market_input_snapshots", "observability_metrics"}
