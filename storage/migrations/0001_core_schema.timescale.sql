-- Timescale mode for 0001: the time-series tables become hypertables with compression, and the
-- tables whose rows are only useful for a while get retention policies. Applied only when the
-- timescaledb extension is present; `migrate_data` converts tables that already hold rows (a
-- database that ran in plain mode first). Policies run in TimescaleDB's background scheduler.
--
-- Retention: candles, decisions and checkpoints are kept (training data and the audit trail);
-- metrics after 90 days and input snapshots after 365 days are dropped.

SELECT create_hypertable('candles', 'open_time', chunk_time_interval => INTERVAL '7 days',
                         migrate_data => true, if_not_exists => true);
ALTER TABLE candles SET (timescaledb.compress,
                         timescaledb.compress_segmentby = 'pair, interval',
                         timescaledb.compress_orderby = 'open_time');
SELECT add_compression_policy('candles', INTERVAL '30 days', if_not_exists => true);

SELECT create_hypertable('trade_decisions', 'candle_open_time', chunk_time_interval => INTERVAL '30 days',
                         migrate_data => true, if_not_exists => true);
ALTER TABLE trade_decisions SET (timescaledb.compress,
                                 timescaledb.compress_segmentby = 'run_id, pair',
                                 timescaledb.compress_orderby = 'interval, candle_open_time');
SELECT add_compression_policy('trade_decisions', INTERVAL '60 days', if_not_exists => true);

SELECT create_hypertable('market_input_snapshots', 'candle_open_time', chunk_time_interval => INTERVAL '7 days',
                         migrate_data => true, if_not_exists => true);
ALTER TABLE market_input_snapshots SET (timescaledb.compress,
                                        timescaledb.compress_segmentby = 'run_id, pair',
                                        timescaledb.compress_orderby = 'interval, candle_open_time');
SELECT add_compression_policy('market_input_snapshots', INTERVAL '14 days', if_not_exists => true);
SELECT add_retention_policy('market_input_snapshots', INTERVAL '365 days', if_not_exists => true);

SELECT create_hypertable('observability_metrics', 'recorded_at', chunk_time_interval => INTERVAL '1 day',
                         migrate_data => true, if_not_exists => true);
ALTER TABLE observability_metrics SET (timescaledb.compress,
                                       timescaledb.compress_segmentby = 'metric',
                                       timescaledb.compress_orderby = 'recorded_at, id');
SELECT add_compression_policy('observability_metrics', INTERVAL '7 days', if_not_exists => true);
SELECT add_retention_policy('observability_metrics', INTERVAL '90 days', if_not_exists => true);
