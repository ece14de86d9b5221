-- The contract rules a dataset was built with (price and quantity precision, minimum quantity and
-- notional, maker and taker fees, maximum leverage: `Contract.to_json`), and where they came from:
-- 'venue' (listed by the venue when the dataset was built), 'preset:sim' (the offline default, the
-- contract the built-in simulator lists) or 'file:PATH' (a contract file given to `dataset build`).
-- `tradingd train` and `evaluate` read them from here and never ask the venue; datasets built before
-- this migration have none (NULL) and fall back to the venue's contract of the moment.
ALTER TABLE dataset_versions ADD COLUMN contract jsonb;
ALTER TABLE dataset_versions ADD COLUMN contract_source text;
ALTER TABLE dataset_versions ADD CONSTRAINT dataset_versions_contract_sourced
    CHECK ((contract IS NULL) = (contract_source IS NULL));
