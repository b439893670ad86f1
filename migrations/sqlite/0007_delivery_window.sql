-- Notification delivery with a per-customer window (several unanswered at once) and late answers.
--
-- The outbox is rebuilt:
-- - `seq` becomes AUTOINCREMENT: the dispatcher reads each app's rows from a cursor (the last seq
--   it looked at), which is only sound if a seq is never handed out twice (plain rowids are
--   reused once the highest row is deleted);
-- - the per-customer index goes (windows are kept in memory now) and `id` is no longer a UNIQUE
--   index (nothing looks rows up by id; ids are random): two fewer index writes per row;
-- - `seen`: an attempt reached an app and went unanswered, so sending it again is a redelivery.
CREATE TABLE outbox_v2 (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL,
    org_id           TEXT NOT NULL REFERENCES orgs (id),
    app_id           TEXT NOT NULL REFERENCES apps (id),
    customer_id      TEXT NOT NULL,   -- the purse id for purse notifications
    entry            BLOB NOT NULL,   -- an encoded notification without app data
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL DEFAULT 0,
    last_error       TEXT,
    purse            INTEGER NOT NULL DEFAULT 0,
    seen             INTEGER NOT NULL DEFAULT 0
);
INSERT INTO outbox_v2 (seq, id, org_id, app_id, customer_id, entry, created_at, expires_at, attempts,
                       next_attempt_at, last_error, purse)
    SELECT seq, id, org_id, app_id, customer_id, entry, created_at, expires_at, attempts, next_attempt_at,
           last_error, purse FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_v2 RENAME TO outbox;
-- (app_id, rowid): each app's rows in seq order, read from a cursor.
CREATE INDEX outbox_by_app ON outbox (app_id);

-- Leases are released when the leasing connection closes.
CREATE INDEX app_data_by_lease_owner ON app_data (lease_owner) WHERE lease_owner IS NOT NULL;
