-- Funding in paper and live runs (domain/funding.py: a position held through a funding time pays
-- quantity x mark x rate; a long pays a positive rate).
-- funding_rates: the venue's settled rate of each funding time of a pair (GET .../quote/fundingRate),
-- stored by the feed as the funding times pass; the first word of the venue stands.
CREATE TABLE funding_rates (
    pair          text        NOT NULL,
    funding_time  timestamptz NOT NULL,
    rate          numeric     NOT NULL,
    source        text        NOT NULL,
    stored_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pair, funding_time)
);
-- funding_payments: what a run's position paid at a funding time (negative: received), once per run,
-- pair and funding time, with the figures it was computed from: the position held through the candle
-- holding the funding time and that candle's close.
CREATE TABLE funding_payments (
    run_id        uuid        NOT NULL REFERENCES agent_runs (id),
    pair          text        NOT NULL,
    funding_time  timestamptz NOT NULL,
    trade_id      uuid        REFERENCES trades (id),
    mode          text        NOT NULL CHECK (mode IN ('paper', 'live')),
    quantity      numeric     NOT NULL,
    mark          numeric     NOT NULL CHECK (mark > 0),
    rate          numeric     NOT NULL,
    payment       numeric     NOT NULL,
    paid_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, pair, funding_time)
);
-- A trade's funding, paid while it was open (its realized_pnl is net of fees and funding).
ALTER TABLE trades ADD COLUMN funding numeric NOT NULL DEFAULT 0;
