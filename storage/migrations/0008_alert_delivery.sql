-- Delivery of alerts to a person (the alerts.* settings: a webhook, a Telegram chat). Each alert keeps
-- its own delivery state: `pending` until every configured channel has it (`delivered_to`), then
-- `delivered`; `not_sent` when below alerts.min_severity or raised before delivery existed;
-- `undeliverable` when still not delivered after alerts.max_age_hours. `uid` names one alert across a
-- database outage (an alert kept in memory may be delivered before its row exists).
ALTER TABLE alerts
    ADD COLUMN uid               uuid        NOT NULL DEFAULT gen_random_uuid(),
    ADD COLUMN delivery          text        NOT NULL DEFAULT 'not_sent'
        CHECK (delivery IN ('pending', 'delivered', 'not_sent', 'undeliverable')),
    ADD COLUMN delivered_to      text[]      NOT NULL DEFAULT '{}',
    ADD COLUMN delivery_attempts integer     NOT NULL DEFAULT 0,
    ADD COLUMN delivery_error    text,
    ADD COLUMN delivered_at      timestamptz;
ALTER TABLE alerts ALTER COLUMN delivery SET DEFAULT 'pending';
CREATE UNIQUE INDEX alerts_uid ON alerts (uid);
CREATE INDEX alerts_undelivered ON alerts (id) WHERE delivery = 'pending';
