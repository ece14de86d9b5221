-- Protective orders on a live venue: a reduce-only STOP_MARKET (and TAKE_PROFIT_MARKET) for every open
-- position, at the limit set's distances, journaled like every other order (intent first). The venue
-- takes no client order id for them; `client_order_id` is ours, `exchange_order_id` the venue's.
ALTER TABLE trade_executions DROP CONSTRAINT trade_executions_order_type_check;
ALTER TABLE trade_executions ADD CONSTRAINT trade_executions_order_type_check
    CHECK (order_type IN ('MARKET', 'LIMIT', 'STOP_MARKET', 'TAKE_PROFIT_MARKET'));
ALTER TABLE trade_executions ADD COLUMN stop_price numeric CHECK (stop_price > 0);
