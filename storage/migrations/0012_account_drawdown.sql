-- The circuit breaker on a drawdown from the equity peak, unrealised PnL included (issue 17): the account's
-- marked value (every pair's realised PnL less fees plus its open position at the last mark, counted as
-- it changes) and its peak since the breaker last closed, so a restart keeps both.
ALTER TABLE account_risk_state ADD COLUMN equity numeric NOT NULL DEFAULT 0;
ALTER TABLE account_risk_state ADD COLUMN equity_peak numeric NOT NULL DEFAULT 0;
ALTER TABLE account_risk_policies ADD COLUMN breaker_max_drawdown numeric CHECK (breaker_max_drawdown > 0);
ALTER TABLE account_risk_policies ADD COLUMN flatten_on_trip boolean NOT NULL DEFAULT false;
