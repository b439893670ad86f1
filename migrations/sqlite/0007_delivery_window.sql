-- Notification delivery with a per-customer window (several unanswered at once) and late answers.
--
-- The dispatcher now keeps each customer's window in memory and reads an app's due rows in seq
-- order through outbox_by_app, so the per-customer index is no longer read; dropping it saves a
-- write on every insert and delete.
DROP INDEX outbox_by_customer;
-- Set once an attempt reached an app and went unanswered: sending it again is a redelivery.
ALTER TABLE outbox ADD COLUMN seen INTEGER NOT NULL DEFAULT 0;

-- Leases are released when the leasing connection closes.
CREATE INDEX app_data_by_lease_owner ON app_data (lease_owner) WHERE lease_owner IS NOT NULL;
