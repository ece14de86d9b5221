-- The account guard's equity from the venue (issue 17): on a live run the breaker's drawdown is read from
-- the venue's equity (wallet balance plus unrealised PnL), not counted from the pairs' books. Which of the
-- two `equity` and `equity_peak` hold, so a switch between paper and live starts the peak again.
ALTER TABLE account_risk_state ADD COLUMN equity_source text NOT NULL DEFAULT 'book'
    CHECK (equity_source IN ('book', 'venue'));
