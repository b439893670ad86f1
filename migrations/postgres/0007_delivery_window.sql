-- PostgreSQL twin of migrations/sqlite/0007_delivery_window.sql (see 0001 for what differs).
-- Notification delivery with a per-customer window (several unanswered at once) and late answers.
--
-- On SQLite the outbox is rebuilt:
-- - `seq` becomes AUTOINCREMENT: the dispatcher reads each app's rows from a cursor (the last seq
--   it looked at), which is only sound if a seq is never handed out twice (plain rowids are
--   reused once the highest row is deleted);
-- - the per-customer index goes (windows are kept in memory now) and `id` is no longer a UNIQUE
--   index (nothing looks rows up by id; ids are random): two fewer index writes per row;
-- - `seen`: an attempt reached an app and went unanswered, so sending it again is a redelivery.
-- On PostgreSQL `seq` was an identity from the start (never handed out twice), so only the index
-- and the column change.
DROP INDEX outbox_by_customer;
ALTER TABLE outbox DROP CONSTRAINT outbox_id_key;
ALTER TABLE outbox ADD COLUMN seen BIGINT NOT NULL DEFAULT 0;

-- Leases are released when the leasing connection closes.
CREATE INDEX app_data_by_lease_owner ON app_data (lease_owner) WHERE lease_owner IS NOT NULL;
