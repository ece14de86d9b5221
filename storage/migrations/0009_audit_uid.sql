-- Audit events kept through a database outage (the control socket's commands while PostgreSQL is away)
-- are written when it is back, with the time the command ran (`occurred_at`). `uid` names one event:
-- an insert whose answer was lost (a frozen database) and tried again is not written twice.
ALTER TABLE ops_audit_events ADD COLUMN uid uuid NOT NULL DEFAULT gen_random_uuid();
CREATE UNIQUE INDEX ops_audit_events_uid ON ops_audit_events (uid);
