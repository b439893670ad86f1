-- PostgreSQL twin of migrations/sqlite/0004_bulk_indexes.sql (see 0001 for what differs).
-- Indexes for bulk sends and the notifications they cause.

-- Only replayed and provider-reported messages carry a provider id; messages Hodi sends do not.
-- A partial index keeps those out of it: one B-tree fewer to write per sent message.
DROP INDEX messages_by_provider_id;
CREATE UNIQUE INDEX messages_by_provider_id ON messages (org_id, provider_message_id)
    WHERE provider_message_id IS NOT NULL;

-- The dispatcher reads an app's oldest notifications first: (app_id, seq) stops after its batch.
CREATE INDEX outbox_by_app ON outbox (app_id, seq);
