-- Notification delivery with a per-customer window (several unanswered at once) and late replies.
--
-- `claimed` marks a notification handed to a delivery (on the wire, its answer awaited). The
-- dispatcher reads only unclaimed rows, through a partial index that claimed rows leave, so rows
-- in flight cost nothing to skip however many there are. A restarted server releases every claim.
ALTER TABLE outbox ADD COLUMN claimed INTEGER NOT NULL DEFAULT 0;
-- Set once an attempt reached an app and went unanswered: sending it again is a redelivery.
ALTER TABLE outbox ADD COLUMN seen INTEGER NOT NULL DEFAULT 0;
CREATE INDEX outbox_ready ON outbox (app_id, seq) WHERE claimed = 0;

-- Leases are released when the leasing connection closes.
CREATE INDEX app_data_by_lease_owner ON app_data (lease_owner) WHERE lease_owner IS NOT NULL;
