-- A live venue's position the database did not know, found by reconciliation and adopted
-- (`trading.external_positions = "adopt"`): recorded as a trade of its own origin, managed from then on.
ALTER TABLE trades ADD COLUMN origin text NOT NULL DEFAULT 'decision' CHECK (origin IN ('decision', 'external'));
